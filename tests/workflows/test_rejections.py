"""Bad input gets a clear refusal and loses nothing (on the real dev server).

An update that does not fit is refused by its validator and never reaches history; the
same action sent as a signal becomes an `action_rejected` event and the ticket goes on.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from temporalio.client import WorkflowUpdateFailedError

from tests.workflows.conftest import AGENT, TECH, Desk
from workflows.contracts import (
    ActionSignal,
    Close,
    CustomerReply,
    Dispatch,
    EngagePartner,
    PostProgress,
    RecordMilestone,
    RecordReviewDecision,
    Resolve,
)
from workflows.vocabulary import CustomerReplyKind, Milestone, ResultKind, TicketStatus

RESOLVE = Resolve(
    actor=AGENT, result_kind=ResultKind.TECHNICAL, message="fixed", root_cause="產品缺陷-訂單頁"
)


async def accepted_updates(desk: Desk, ticket_id: str) -> int:
    history = await desk.tickets.handle(ticket_id).fetch_history()
    return sum(
        1
        for event in history.events
        if event.HasField("workflow_execution_update_accepted_event_attributes")
    )


async def test_misfit_updates_are_refused_before_history(live_desk: Desk) -> None:
    desk = live_desk
    tid = (await desk.open("App 闪退", "打开订单页就闪退")).ticket_id
    await desk.expect_rejection(
        tid, Dispatch(actor=AGENT, departments=["legal"], note="x"), "unknown department"
    )
    await desk.tickets.act(tid, Dispatch(actor=AGENT, departments=["tech"], note="crash"))
    await desk.expect_rejection(
        tid, Dispatch(actor=AGENT, departments=["tech"], note="again"), "already hold"
    )
    await desk.expect_rejection(
        tid, PostProgress(actor=TECH, department="finance", note="?"), "no open work order"
    )
    await desk.expect_rejection(tid, RESOLVE, "open work orders at tech")
    await desk.expect_rejection(
        tid, RecordReviewDecision(actor=AGENT, decision="n/a"), "no upgrade review"
    )
    await desk.expect_rejection(
        tid, RecordMilestone(actor=AGENT, milestone=Milestone.RESOLVED, note="x"), "use the resolve"
    )
    await desk.expect_rejection(
        tid,
        EngagePartner(
            actor=AGENT,
            partner="sf-express",
            problem="lost parcel",
            expected_by=datetime(2020, 1, 1, tzinfo=UTC),
        ),
        "in the future",
    )
    await desk.expect_rejection(tid, Close(actor=AGENT, long_term_plan="later"), "root-cause")
    await desk.tickets.act(
        tid, PostProgress(actor=TECH, department="tech", note="fixed", work_order_done=True)
    )
    view = await desk.tickets.act(tid, RESOLVE)
    assert view.status is TicketStatus.RESOLVED_AWAITING_CONFIRMATION
    await desk.expect_rejection(tid, RESOLVE, "already resolved")
    # dispatch, progress, resolve: the eight refusals left no trace in history.
    assert await accepted_updates(desk, tid) == 3


async def test_malformed_update_payload_is_refused(live_desk: Desk) -> None:
    desk = live_desk
    tid = (await desk.open("会员怎么续费")).ticket_id
    handle = desk.tickets.handle(tid)
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update("resolve", {"actor": {"id": "a"}, "result_kind": "magic"})
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            "resolve",
            {
                "actor": {"id": "a"},
                "result_kind": "technical",
                "message": "m",
                "root_cause": "no tag",
            },
        )
    assert await accepted_updates(desk, tid) == 0
    assert (await desk.tickets.view(tid)).status is TicketStatus.NEW


async def test_misfit_signal_becomes_an_event_and_the_ticket_goes_on(live_desk: Desk) -> None:
    desk = live_desk
    tid = (await desk.open("会员怎么续费")).ticket_id
    await desk.tickets.act_later(tid, RESOLVE.model_copy(update={"action_id": "act-1"}))
    await desk.tickets.act_later(
        tid, PostProgress(actor=TECH, department="tech", note="?", action_id="act-2")
    )
    # A signal sent twice (at-least-once delivery) is applied once.
    await desk.tickets.act_later(
        tid, PostProgress(actor=TECH, department="tech", note="?", action_id="act-2")
    )
    # A payload that does not even parse is dropped by the SDK without failing the task.
    await desk.tickets.handle(tid).signal("act", {"action": {"type": "teleport"}})
    await desk.tickets.customer_reply(
        tid, CustomerReply(reply_id="c1", kind=CustomerReplyKind.CSAT, score=9)
    )
    await desk.tickets.handle(tid).signal("act", ActionSignal(action=RESOLVE))
    await desk.settled(tid)

    events = await desk.events(tid)
    rejected = [row["data"] for row in events if row["type"] == "action_rejected"]
    assert [r["action"] for r in rejected] == ["post_progress", "csat", "resolve"]
    assert "1-5" in rejected[1]["reason"]
    view = await desk.tickets.view(tid)
    assert view.status is TicketStatus.RESOLVED_AWAITING_CONFIRMATION
    history = await desk.tickets.handle(tid).fetch_history()
    assert not any(e.HasField("workflow_task_failed_event_attributes") for e in history.events)


def test_root_cause_tags_are_checked_where_they_enter() -> None:
    with pytest.raises(ValueError, match="root cause"):
        Resolve(actor=AGENT, result_kind=ResultKind.TECHNICAL, message="m", root_cause="bug")
    assert (
        Resolve(
            actor=AGENT,
            result_kind=ResultKind.TECHNICAL,
            message="m",
            root_cause=" 流程漏洞-退款審核 ",
        ).root_cause
        == "流程漏洞-退款審核"
    )
