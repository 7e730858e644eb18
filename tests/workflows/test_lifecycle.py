"""Whole ticket lives on the time-skipping server, with real activities and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.service import RPCError

from tests.workflows.conftest import AGENT, STANDARD_LIFECYCLE_EVENTS, Desk, DeskFactory, resolve
from workflows.contracts import Close, CustomerReply, PartnerCallback, Respond
from workflows.policy import ServicePolicy
from workflows.vocabulary import CloseReason, CustomerReplyKind, TicketStatus


async def test_standard_lifecycle_closes_on_customer_confirmation(desk: Desk) -> None:
    opened = await desk.open("支付失败", "付款时一直报错, 无法支付")
    assert opened.created

    view = await desk.tickets.act(opened.ticket_id, Respond(actor=AGENT, message="正在为您查看"))
    assert view.status is TicketStatus.IN_PROGRESS
    view = await desk.tickets.act(opened.ticket_id, resolve())
    assert view.status is TicketStatus.RESOLVED_AWAITING_CONFIRMATION
    await desk.tickets.customer_reply(
        opened.ticket_id, CustomerReply(reply_id="r1", kind=CustomerReplyKind.SOLVED)
    )
    outcome = await desk.outcome(opened.ticket_id)

    assert outcome.status is TicketStatus.CLOSED
    assert outcome.close_reason is CloseReason.CUSTOMER_CONFIRMED
    assert outcome.root_cause == "產品缺陷-支付流程"
    assert await desk.event_types(opened.ticket_id) == STANDARD_LIFECYCLE_EVENTS
    kinds = [row["kind"] for row in await desk.outbox(opened.ticket_id)]
    assert kinds == [
        "customer_message:agent_reply",
        "customer_message:result",
        "customer_message:confirmation_request",
        "customer_message:satisfaction_survey",
    ]
    row = await desk.pool.fetchrow("SELECT * FROM tickets WHERE ticket_id = $1", opened.ticket_id)
    assert row is not None
    assert row["status"] == "closed"
    assert row["root_cause"] == "產品缺陷-支付流程"
    assert row["first_response_seconds"] is not None


async def test_same_idempotency_key_gives_one_ticket(desk: Desk) -> None:
    first = await desk.open("会员怎么续费", idempotency_key="gateway-msg-4711")
    again = await desk.open("会员怎么续费", idempotency_key="gateway-msg-4711")
    assert first.ticket_id == again.ticket_id
    assert (first.created, again.created) == (True, False)
    await desk.settled(first.ticket_id)
    assert (await desk.event_types(first.ticket_id)).count("ticket_opened") == 1


async def test_intake_key_used_by_a_forgotten_ticket_is_refused(desk: Desk) -> None:
    """After Temporal's retention the id could start again: PostgreSQL still says no."""
    opened = await desk.open("提现失败", "无法提现", idempotency_key="forgotten-key")
    await desk.settled(opened.ticket_id)
    await desk.tickets.handle(opened.ticket_id).terminate("simulate retention expiry")
    # A new run under a new id with the same key is what a start after retention looks like.
    await desk.pool.execute(
        "UPDATE intake_keys SET run_id = 'an-earlier-run' WHERE idempotency_key = 'forgotten-key'"
    )
    from workflows.contracts import Intake, TicketInput
    from workflows.ticket import TicketWorkflow
    from workflows.vocabulary import Channel

    before = await desk.event_types(opened.ticket_id)
    outcome = await desk.client.execute_workflow(
        TicketWorkflow.run,
        TicketInput(
            ticket_id=opened.ticket_id,
            intake=Intake(
                idempotency_key="forgotten-key",
                channel=Channel.EMAIL,
                customer_id="cust-1",
                subject="提现失败",
                description="无法提现",
            ),
            policy=desk.policy,
        ),
        id=f"{opened.ticket_id}-again",
        task_queue=desk.task_queue,
    )
    assert outcome.duplicate
    assert await desk.event_types(opened.ticket_id) == before


async def test_not_solved_reopens_then_auto_closes_after_72h_of_silence(desk: Desk) -> None:
    opened = await desk.open("订单一直显示待发货", channel="email")
    tid = opened.ticket_id
    await desk.tickets.act(tid, Respond(actor=AGENT, message="我们来看看"))
    await desk.tickets.act(tid, resolve("流程漏洞-訂單狀態"))
    await desk.tickets.customer_reply(
        tid, CustomerReply(reply_id="r1", kind=CustomerReplyKind.NOT_SOLVED)
    )
    await desk.settled(tid)
    view = await desk.tickets.view(tid)
    assert view.status is TicketStatus.IN_PROGRESS
    assert view.reopen_count == 1
    assert view.deadlines.auto_close is None

    await desk.tickets.act(tid, resolve("流程漏洞-訂單狀態"))
    await desk.skip(timedelta(hours=71), tid)
    assert (await desk.tickets.view(tid)).status is TicketStatus.RESOLVED_AWAITING_CONFIRMATION
    await desk.skip(timedelta(hours=2))
    outcome = await desk.outcome(tid)
    assert outcome.close_reason is CloseReason.NO_REPLY
    types = await desk.event_types(tid)
    assert types.count("reopened") == 1
    assert types[-3:] == ["closed", "status_changed", "feedback_requested"]


async def test_customer_message_restarts_the_72h_quiet_period(desk: Desk) -> None:
    opened = await desk.open("退款什么时候到账", channel="web_form")
    tid = opened.ticket_id
    await desk.tickets.act(tid, resolve("流程漏洞-退款審核"))
    await desk.skip(timedelta(hours=60), tid)
    await desk.tickets.customer_reply(
        tid, CustomerReply(reply_id="m1", kind=CustomerReplyKind.MESSAGE, text="还没到账")
    )
    await desk.skip(timedelta(hours=60), tid)
    assert (await desk.tickets.view(tid)).status is TicketStatus.RESOLVED_AWAITING_CONFIRMATION
    await desk.skip(timedelta(hours=13))
    assert (await desk.outcome(tid)).close_reason is CloseReason.NO_REPLY


async def test_close_with_long_term_plan_tells_the_customer(desk: Desk) -> None:
    opened = await desk.open("建议增加夜间模式", "希望 app 有夜间模式", channel="app_feedback")
    tid = opened.ticket_id
    await desk.tickets.act(
        tid,
        Close(actor=AGENT, long_term_plan="夜间模式已排入 Q3 版本", root_cause="產品需求-夜間模式"),
    )
    outcome = await desk.outcome(tid)
    assert outcome.close_reason is CloseReason.LONG_TERM_PLAN
    kinds = [row["kind"] for row in await desk.outbox(tid)]
    assert kinds == [
        "customer_message:acknowledgement",
        "customer_message:long_term_plan",
        "customer_message:satisfaction_survey",
    ]


# ---------------------------------------------------------------- feedback after closing


async def close_solved(desk: Desk) -> str:
    tid = (await desk.open("支付失败", "付款时一直报错, 无法支付")).ticket_id
    await desk.tickets.act(tid, resolve())
    await desk.tickets.customer_reply(
        tid, CustomerReply(reply_id="solved", kind=CustomerReplyKind.SOLVED)
    )
    await desk.settled(tid)
    return tid


async def test_ratings_sent_after_closing_are_recorded(desk: Desk) -> None:
    """CSAT and NPS always come after the ticket closed: it asks, and listens for them."""
    tid = await close_solved(desk)
    view = await desk.tickets.view(tid)
    assert view.status is TicketStatus.CLOSED
    assert view.waiting_for.startswith("the customer's rating, until ")

    for reply in (
        CustomerReply(reply_id="m", kind=CustomerReplyKind.MESSAGE, text="谢谢"),
        CustomerReply(reply_id="c", kind=CustomerReplyKind.CSAT, score=4),
        CustomerReply(reply_id="c", kind=CustomerReplyKind.CSAT, score=4),  # redelivered
        CustomerReply(reply_id="n", kind=CustomerReplyKind.NPS, score=9),
    ):
        await desk.tickets.customer_reply(tid, reply)

    # Both ratings in: the ticket ends without waiting out its window.
    outcome = await desk.tickets.handle(tid).result()
    assert outcome.close_reason is CloseReason.CUSTOMER_CONFIRMED
    events = await desk.events(tid)
    assert [e["type"] for e in events][-4:] == [
        "feedback_requested",
        "customer_replied",  # recorded, and the ticket stays closed
        "csat_recorded",
        "nps_recorded",
    ]
    assert events[-3]["data"] == {"kind": "message", "after_close": True, "text": "谢谢"}
    row = await desk.pool.fetchrow("SELECT csat, nps FROM tickets WHERE ticket_id = $1", tid)
    assert row is not None and (row["csat"], row["nps"]) == (4, 9)
    survey = [r for r in await desk.outbox(tid) if r["kind"].endswith("satisfaction_survey")]
    assert len(survey) == 1


async def test_feedback_window_ends_after_the_policy_time(desk: Desk) -> None:
    tid = await close_solved(desk)
    await desk.tickets.customer_reply(
        tid, CustomerReply(reply_id="c", kind=CustomerReplyKind.CSAT, score=2)
    )
    await desk.skip(desk.policy.feedback_window - timedelta(minutes=1), tid)
    assert (await desk.tickets.view(tid)).status is TicketStatus.CLOSED
    await desk.skip(timedelta(minutes=2))

    outcome = await desk.tickets.handle(tid).result()
    assert outcome.status is TicketStatus.CLOSED
    # Too late: the ticket has ended, and says so to whoever sends one now.
    with pytest.raises(RPCError, match=r"[Cc]ompleted"):
        await desk.tickets.customer_reply(
            tid, CustomerReply(reply_id="n", kind=CustomerReplyKind.NPS, score=3)
        )
    row = await desk.pool.fetchrow("SELECT csat, nps FROM tickets WHERE ticket_id = $1", tid)
    assert row is not None and (row["csat"], row["nps"]) == (2, None)


async def test_no_survey_when_the_window_is_zero(desk_factory: DeskFactory) -> None:
    desk = await desk_factory(policy=ServicePolicy(feedback_window=timedelta(0)))
    tid = await close_solved(desk)
    outcome = await desk.tickets.handle(tid).result()
    assert outcome.status is TicketStatus.CLOSED
    assert "feedback_requested" not in await desk.event_types(tid)
    assert not [r for r in await desk.outbox(tid) if r["kind"].endswith("satisfaction_survey")]


async def test_a_partner_answer_to_a_closed_ticket_is_kept_not_acted_on(desk: Desk) -> None:
    tid = await close_solved(desk)
    late = PartnerCallback(callback_id="cb-late", partner="unionpay", answer="款项已退回")
    await desk.tickets.partner_callback(tid, late)
    await desk.tickets.partner_callback(tid, late)  # redelivered
    await desk.settled(tid)
    events = await desk.events(tid)
    rejected = [e["data"] for e in events if e["type"] == "action_rejected"]
    assert rejected == [
        {"action": "partner_callback", "reason": f"ticket {tid} is closed", "text": "款项已退回"}
    ]
    assert (await desk.tickets.view(tid)).status is TicketStatus.CLOSED
