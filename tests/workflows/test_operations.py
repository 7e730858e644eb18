"""What operators and the event store rely on: search attributes on the real dev server,
exactly-once events under retries, bounded history, and continue-as-new that keeps state."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from tests.waiting import eventually
from tests.workflows.conftest import (
    AGENT,
    STANDARD_LIFECYCLE_EVENTS,
    TECH,
    Desk,
    DeskFactory,
    _desks,
    resolve,
)
from workflows import activity_names as names
from workflows.contracts import CustomerReply, Dispatch, PostProgress, Respond
from workflows.policy import ServicePolicy
from workflows.vocabulary import CustomerReplyKind, TicketStatus

RESOLVE = resolve()
LOCAL_ACTIVITY_MARKER = "core_local_activity"


async def standard_lifecycle(desk: Desk, subject: str = "支付失败") -> str:
    tid = (await desk.open(subject, "付款时一直报错, 无法支付")).ticket_id
    await desk.tickets.act(tid, Respond(actor=AGENT, message="正在为您查看"))
    await desk.tickets.act(tid, RESOLVE)
    await desk.tickets.customer_reply(
        tid, CustomerReply(reply_id="r1", kind=CustomerReplyKind.SOLVED)
    )
    await desk.outcome(tid)
    return tid


async def history_length(desk: Desk, ticket_id: str) -> int:
    history = await desk.tickets.handle(ticket_id).fetch_history()
    return len(history.events)


# ---------------------------------------------------------------- search attributes


async def test_operators_find_tickets_by_search_attributes(live_desk: Desk) -> None:
    desk = live_desk
    urgent = (await desk.open("全量用户无法下单", "所有用户都无法下单", tier="vip")).ticket_id
    routine = (await desk.open("会员怎么续费", channel="email")).ticket_id
    await desk.settled(urgent)
    await desk.settled(routine)
    query = (
        "TicketPriority = 'E' AND TicketStatus != 'closed' AND TicketTier = 'vip' "
        f"AND TicketTags = '故障-訂單-E級' AND WorkflowId IN ('{urgent}', '{routine}')"
    )

    async def listed() -> list[str]:
        return [wf.id async for wf in desk.client.list_workflows(query)]

    # Visibility is eventually consistent: a bounded wait for indexing.
    assert await eventually(listed, bool, within=5) == [urgent]

    description = await desk.tickets.handle(urgent).describe()
    attrs = description.typed_search_attributes
    from workflows import search_attributes as sa

    assert attrs.get(sa.TICKET_CATEGORY) == "technical_fault"
    assert attrs.get(sa.TICKET_SLA_DEADLINE) is not None
    assert attrs.get(sa.TICKET_SLA_BREACHED) is False
    assert await description.static_summary() == "[E] 故障-訂單: 全量用户无法下单"


async def test_operators_see_paused_slas_and_the_next_deadline(live_desk: Desk) -> None:
    from workflows import search_attributes as sa

    desk = live_desk
    tid = (await desk.open("支付失败 无法付款", "付款一直失败")).ticket_id
    await desk.tickets.act(
        tid, Respond(actor=AGENT, message="请问是哪张卡？", awaiting_customer=True)
    )
    await desk.settled(tid)

    async def found(query: str) -> list[str]:
        async def listed() -> list[str]:
            return [wf.id async for wf in desk.client.list_workflows(query)]

        return await eventually(listed, bool, within=5)  # visibility is eventually consistent

    assert await found(f"TicketSlaPaused = true AND WorkflowId = '{tid}'") == [tid]
    view = await desk.tickets.view(tid)
    attrs = (await desk.tickets.handle(tid).describe()).typed_search_attributes
    # Paused: no SLA instant and no promise due (the first response was given).
    assert attrs.get(sa.TICKET_SLA_DEADLINE) is None
    assert view.next_deadline is None and attrs.get(sa.TICKET_NEXT_DEADLINE) is None

    await desk.tickets.customer_reply(
        tid, CustomerReply(reply_id="r-1", kind=CustomerReplyKind.MESSAGE, text="招行")
    )
    await desk.settled(tid)
    assert await found(f"TicketSlaPaused = false AND WorkflowId = '{tid}'") == [tid]
    attrs = (await desk.tickets.handle(tid).describe()).typed_search_attributes
    assert attrs.get(sa.TICKET_SLA_DEADLINE) is not None
    # Running again: the next promise is the first SLA warning (75 % of A's 4 h).
    view = await desk.tickets.view(tid)
    assert view.next_deadline == "sla_warning"
    assert attrs.get(sa.TICKET_NEXT_DEADLINE) == view.next_deadline_at


async def test_what_temporal_shows_holds_no_personal_data(live_desk: Desk) -> None:
    desk = live_desk
    tid = (
        await desk.open(
            "验证码收不到 13812345678 / li.lei@example.com",
            "身份证 11010519491231002X 的账户收不到验证码",
        )
    ).ticket_id
    description = await desk.tickets.handle(tid).describe()
    summary = await description.static_summary()
    details = await description.static_details()
    assert summary is not None and details is not None
    assert summary.endswith("验证码收不到 [phone] / [email]")
    for shown in (summary, details, tid):
        assert "13812345678" not in shown
        assert "li.lei@example.com" not in shown
        assert "11010519491231002X" not in shown


# ---------------------------------------------------------------- exactly-once events


class _CrashAfterFirstAppend(Interceptor):
    """Lets the first append_events attempt write, then fails it: a worker that died
    after PostgreSQL committed but before Temporal heard back."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next)


class _Inbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> object:
        result = await self.next.execute_activity(input)
        info = activity.info()
        if info.activity_type == names.APPEND_EVENTS and info.attempt == 1:
            raise RuntimeError("simulated crash after commit")
        return result


async def test_retried_appends_store_each_event_once(desk_factory: DeskFactory) -> None:
    desk = await desk_factory(interceptors=[_CrashAfterFirstAppend()])
    tid = await standard_lifecycle(desk)
    rows = await desk.events(tid)
    seqs = [row["seq"] for row in rows]
    assert seqs == list(range(1, len(seqs) + 1))
    assert [row["type"] for row in rows] == STANDARD_LIFECYCLE_EVENTS
    row = await desk.pool.fetchrow("SELECT status, last_seq FROM tickets WHERE ticket_id = $1", tid)
    assert row is not None
    assert (row["status"], row["last_seq"]) == ("closed", len(seqs))


# ---------------------------------------------------------------- history size


async def test_history_stays_small(desk: Desk) -> None:
    tid = await standard_lifecycle(desk)
    standard = await history_length(desk, tid)
    assert standard <= 120
    # Messages and hand-offs travel with their events: one store write per step. The
    # intake's claim and the learned classifier run inside a workflow task, as local
    # activities: markers.
    history = await desk.tickets.handle(tid).fetch_history()
    scheduled = {
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    }
    assert scheduled == {names.APPEND_EVENTS}
    markers = [
        event
        for event in history.events
        if event.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER
    ]
    assert len(markers) == 2

    waiting = (await desk.open("App 闪退", "打开订单页就闪退", channel="email")).ticket_id
    await desk.tickets.act(waiting, Dispatch(actor=AGENT, departments=["tech"], note="crash"))
    await desk.skip(timedelta(days=10), waiting)
    ten_days = await history_length(desk, waiting)
    reminded = [r for r in await desk.events(waiting) if r["type"] == "progress_reminded"]
    assert len(reminded) == 10
    # A daily check and review cost about 20 events, not 37; the rest is once per ticket
    # (intake, the learned classifier, SLA warnings, breach and escalation ladder).
    assert ten_days < 340
    print(f"\nhistory events: standard lifecycle {standard}, 10 days on a department {ten_days}")


# ---------------------------------------------------------------- continue-as-new


async def test_ticket_open_for_months_keeps_each_run_bounded(desk_factory: DeskFactory) -> None:
    # A low bound, so two months of daily checks make several runs.
    desk = await desk_factory(policy=ServicePolicy(history_events_per_run=200))
    tid = (await desk.open("App 闪退", "打开订单页就闪退", channel="email")).ticket_id
    await desk.tickets.act(tid, Dispatch(actor=AGENT, departments=["tech"], note="crash"))
    await desk.skip(timedelta(days=60), tid)
    state = await desk.tickets.state(tid)
    assert state.runs >= 3
    assert await history_length(desk, tid) < 200 + 40
    reminded = [r for r in await desk.events(tid) if r["type"] == "progress_reminded"]
    assert len(reminded) == 60


async def test_long_ticket_continues_as_new_keeping_state(
    eager_can_env: WorkflowEnvironment, pg_pool: asyncpg.Pool
) -> None:
    # A policy day passes in 0.25 s, so daily 10:00 checks pile up history quickly.
    policy = ServicePolicy(time_scale=86400 * 4)
    async with _desks(eager_can_env, pg_pool) as make:
        desk = await make(policy)
        tid = (await desk.open("App 闪退", "打开订单页就闪退", channel="email")).ticket_id
        await desk.tickets.act(tid, Dispatch(actor=AGENT, departments=["tech"], note="crash"))
        # At most 20 s of real time for a few policy weeks.
        state = await eventually(lambda: desk.tickets.state(tid), lambda now: now.runs >= 3)
        assert state.runs >= 3
        assert state.status is TicketStatus.WAITING_ON_DEPARTMENT
        assert state.deadlines.progress_check is not None

        view = await desk.tickets.act(
            tid, PostProgress(actor=TECH, department="tech", note="fixed", work_order_done=True)
        )
        assert view.status is TicketStatus.IN_PROGRESS
        await desk.settled(tid)
        seqs = [row["seq"] for row in await desk.events(tid)]
        assert seqs == list(range(1, len(seqs) + 1))
        description = await desk.tickets.handle(tid).describe()
        assert (
            description.run_id != description.raw_description.workflow_execution_info.first_run_id
        )
