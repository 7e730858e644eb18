"""Every promise of SPEC.md as a durable timer, checked by skipping time on the test server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.workflows.conftest import AGENT, Desk
from workflows.contracts import (
    Dispatch,
    EngagePartner,
    PartnerCallback,
    PostProgress,
    RecordMilestone,
    RecordReviewDecision,
    Respond,
)
from workflows.vocabulary import Milestone, Priority, TicketStatus

SHANGHAI = ZoneInfo("Asia/Shanghai")


def data_of(events: list, kind: str) -> list[dict]:  # type: ignore[type-arg]
    return [row["data"] for row in events if row["type"] == kind]


@pytest.mark.parametrize(("tier", "target"), [("vip", 30), ("standard", 60)])
async def test_live_first_response_breach_sends_auto_reply_and_calls_supervisor(
    desk: Desk, tier: str, target: int
) -> None:
    opened = await desk.open("登录不了", "login fails", tier=tier, channel="app_chat")
    tid = opened.ticket_id
    await desk.skip(timedelta(seconds=target - 5), tid)
    assert "first_response_breached" not in await desk.event_types(tid)

    await desk.skip(timedelta(seconds=10), tid)
    events = await desk.events(tid)
    assert data_of(events, "first_response_breached") == [{"target_seconds": float(target)}]
    outbox = await desk.outbox(tid)
    assert [r["kind"] for r in outbox] == ["customer_message:auto_reply", "supervisor_standby"]
    # A late human response still counts, and says it was late.
    await desk.tickets.act(tid, Respond(actor=AGENT, message="抱歉久等"))
    await desk.settled(tid)
    [responded] = data_of(await desk.events(tid), "first_responded")
    assert responded["within_target"] is False


async def test_async_channel_is_acknowledged_at_once_and_breaches_after_24h(desk: Desk) -> None:
    opened = await desk.open("会员怎么续费", "请问会员怎么续费", channel="email")
    tid = opened.ticket_id
    await desk.settled(tid)
    outbox = await desk.outbox(tid)
    assert [r["kind"] for r in outbox] == ["customer_message:acknowledgement"]
    assert outbox[0]["payload"]["params"]["expect_progress_by"] is not None

    await desk.skip(timedelta(hours=23), tid)
    assert "first_response_breached" not in await desk.event_types(tid)
    await desk.skip(timedelta(hours=2), tid)
    assert data_of(await desk.events(tid), "first_response_breached") == [
        {"target_seconds": 86400.0}
    ]


@pytest.mark.parametrize(
    ("subject", "priority", "sla"),
    [
        ("所有用户都无法下单", Priority.E, timedelta(minutes=30)),
        ("无法提现", Priority.A, timedelta(hours=4)),
        ("会员怎么续费", Priority.B, timedelta(hours=24)),
        ("建议增加夜间模式", Priority.C, timedelta(hours=72)),
    ],
)
async def test_each_priority_sla_breach_escalates(
    desk: Desk, subject: str, priority: Priority, sla: timedelta
) -> None:
    opened = await desk.open(subject, channel="web_form")
    tid = opened.ticket_id
    view = await desk.tickets.view(tid)
    assert view.classification.priority is priority
    await desk.skip(sla - timedelta(minutes=1), tid)
    assert "sla_breached" not in await desk.event_types(tid)

    await desk.skip(timedelta(minutes=2), tid)
    [breach] = data_of(await desk.events(tid), "sla_breached")
    assert breach["priority"] == priority.value
    view = await desk.tickets.view(tid)
    assert view.sla_breached and view.escalated
    kinds = [r["kind"] for r in await desk.outbox(tid)]
    assert "sla_escalation" in kinds
    assert ("emergency_group" in kinds) is (priority is Priority.E)


async def test_e_level_convenes_emergency_group_at_once_and_fix_meets_sla(desk: Desk) -> None:
    opened = await desk.open("全量用户无法下单", "所有用户都无法下单, 支付失败", channel="hotline")
    tid = opened.ticket_id
    await desk.settled(tid)
    paged = [r for r in await desk.outbox(tid) if r["kind"] == "emergency_group"]
    assert {r["channel_or_recipient"] for r in paged} == {
        desk.policy.departments[group] for group in desk.policy.emergency_group
    }
    assert {r["payload"]["priority"] for r in paged} == {"E"}
    await desk.tickets.act(
        tid, RecordMilestone(actor=AGENT, milestone=Milestone.TEMPORARY_FIX, note="rolled back")
    )
    await desk.skip(timedelta(hours=1), tid)
    assert "sla_breached" not in await desk.event_types(tid)
    assert data_of(await desk.events(tid), "milestone_recorded") == [
        {"milestone": "temporary_fix", "meets_sla": True, "note": "rolled back"}
    ]


async def test_account_security_starts_risk_control_at_once(desk: Desk) -> None:
    opened = await desk.open("密碼洩露", "我的密碼洩露了, 有異常登錄", channel="app_chat")
    await desk.settled(opened.ticket_id)
    kinds = [r["kind"] for r in await desk.outbox(opened.ticket_id)]
    assert kinds == ["risk_control"]
    assert "risk_control_started" in await desk.event_types(opened.ticket_id)


async def test_daily_check_at_10_shanghai_reminds_only_silent_departments(desk: Desk) -> None:
    opened = await desk.open("App 闪退", "打开订单页就闪退", channel="email")
    tid = opened.ticket_id
    await desk.tickets.act(
        tid, Dispatch(actor=AGENT, departments=["tech", "finance"], note="crash + refund check")
    )
    await desk.tickets.act(tid, PostProgress(actor=AGENT, department="tech", note="reproduced"))
    view = await desk.tickets.view(tid)
    first_check = view.deadlines.progress_check
    assert first_check is not None
    assert first_check.astimezone(SHANGHAI).hour == 10
    assert first_check.astimezone(SHANGHAI).minute == 0

    # Day 1: tech posted since dispatch, finance did not.
    await desk.skip(first_check - await desk.env.get_current_time() + timedelta(minutes=1), tid)
    reminders = data_of(await desk.events(tid), "progress_reminded")
    assert reminders == [{"departments": ["finance"]}]

    # Day 2, across the date boundary in Shanghai: finance posts, tech stays silent.
    await desk.tickets.act(tid, PostProgress(actor=AGENT, department="finance", note="checked"))
    second_check = (await desk.tickets.view(tid)).deadlines.progress_check
    assert second_check is not None
    assert second_check - first_check == timedelta(days=1)
    await desk.skip(second_check - await desk.env.get_current_time() + timedelta(minutes=1), tid)
    reminders = data_of(await desk.events(tid), "progress_reminded")
    assert reminders == [{"departments": ["finance"]}, {"departments": ["tech"]}]
    outbox = [r for r in await desk.outbox(tid) if r["kind"] == "progress_reminder"]
    assert [r["channel_or_recipient"] for r in outbox] == [
        desk.policy.departments["finance"],
        desk.policy.departments["tech"],
    ]
    # Said in the company's language, due by the next check, in the company's zone.
    third_check = (await desk.tickets.view(tid)).deadlines.progress_check
    assert third_check is not None
    said = await desk.said(tid, "progress_reminder")
    assert [locale for locale, _ in said] == ["zh-Hans", "zh-Hans"]
    for (_, text), due in zip(said, (second_check, third_check), strict=True):
        local = due.astimezone(SHANGHAI)
        assert (
            f"请在 {local.year}年{local.month}月{local.day}日 10:00（中国时间） 前提交进展" in text
        )
        assert tid in text and "UTC" not in text and "Asia/Shanghai" not in text


async def test_no_breakthrough_in_24h_convenes_upgrade_review(desk: Desk) -> None:
    opened = await desk.open("无法提现", "一直提现失败", channel="app_chat")
    tid = opened.ticket_id
    await desk.expect_rejection(
        tid, RecordReviewDecision(actor=AGENT, decision="n/a"), "no upgrade review"
    )
    await desk.skip(timedelta(hours=12), tid)
    await desk.tickets.act(
        tid, RecordMilestone(actor=AGENT, milestone=Milestone.CAUSE_LOCATED, note="bank API")
    )
    # The milestone restarted the 24 h clock: nothing at 25 h from intake.
    await desk.skip(timedelta(hours=13), tid)
    assert "upgrade_review_convened" not in await desk.event_types(tid)
    await desk.skip(timedelta(hours=12), tid)
    assert data_of(await desk.events(tid), "upgrade_review_convened") == [{"number": 1}]
    invited = [
        r["channel_or_recipient"] for r in await desk.outbox(tid) if r["kind"] == "upgrade_review"
    ]
    assert invited == [desk.policy.departments[d] for d in desk.policy.upgrade_review_board]

    view = await desk.tickets.act(
        tid,
        RecordReviewDecision(
            actor=AGENT, decision="escalate to bank partner", attendees=["lead-1"]
        ),
    )
    assert view.escalated
    await desk.settled(tid)
    [recorded] = data_of(await desk.events(tid), "review_decision_recorded")
    assert recorded["decision"] == "escalate to bank partner"
    assert recorded["attendees"] == ["lead-1"]
    # The decision names the next checkpoint (the policy's 24 h by default).
    assert view.deadlines.upgrade_review is not None
    assert recorded["next_review_at"] == view.deadlines.upgrade_review.isoformat().replace(
        "+00:00", "Z"
    )


async def test_partner_updates_every_6h_until_the_partner_answers(desk: Desk) -> None:
    opened = await desk.open("退款没到账", "退款三天没到账", channel="app_chat")
    tid = opened.ticket_id
    expected_by = await desk.env.get_current_time() + timedelta(days=2)
    view = await desk.tickets.act(
        tid,
        EngagePartner(
            actor=AGENT,
            partner="unionpay",
            problem="refund stuck",
            expected_by=expected_by,
            checkpoints=["trace id found", "funds returned"],
        ),
    )
    assert view.status is TicketStatus.WAITING_ON_PARTNER
    [engaged] = view.partners
    assert (engaged.partner, engaged.expected_by, engaged.answered_at) == (
        "unionpay",
        expected_by,
        None,
    )
    await desk.skip(timedelta(hours=13), tid)
    assert data_of(await desk.events(tid), "partner_update_sent") == [
        {"partner": "unionpay", "number": 1},
        {"partner": "unionpay", "number": 2},
    ]
    await desk.tickets.partner_callback(
        tid, PartnerCallback(callback_id="cb-1", partner="unionpay", answer="refunded", final=True)
    )
    # Delivered twice, as signals may be: recorded once.
    await desk.tickets.partner_callback(
        tid, PartnerCallback(callback_id="cb-1", partner="unionpay", answer="refunded", final=True)
    )
    await desk.skip(timedelta(hours=13), tid)
    events = await desk.events(tid)
    assert len(data_of(events, "partner_update_sent")) == 2
    assert len(data_of(events, "partner_answered")) == 1
    view = await desk.tickets.view(tid)
    assert view.status is TicketStatus.IN_PROGRESS
    [answered] = view.partners
    assert answered.updates_sent == 2
    assert answered.answered_at is not None
    kinds = [r["kind"] for r in await desk.outbox(tid)]
    assert kinds.count("customer_message:partner_progress") == 2
    assert kinds[:2] == ["partner_contact", "customer_message:partner_handoff"] or kinds[:2] == [
        "customer_message:partner_handoff",
        "partner_contact",
    ]


def test_next_daily_check_is_dst_safe() -> None:
    from workflows.policy import ServicePolicy, next_daily_check

    policy = ServicePolicy(time_zone="America/New_York")
    # The night clocks go forward (2026-03-08): still 10:00 local, 23 h after the last one.
    before = datetime(2026, 3, 7, 15, 30, tzinfo=UTC)  # 10:30 EST on the 7th
    check = next_daily_check(policy, before, before, Priority.B)
    local = check.astimezone(ZoneInfo("America/New_York"))
    assert (local.day, local.hour, local.minute) == (8, 10, 0)
    assert check.utcoffset() == timedelta(0)
    opened = datetime(2026, 11, 24, 1, 59, tzinfo=UTC)
    shanghai = next_daily_check(ServicePolicy(), opened, opened, Priority.B)
    assert shanghai == datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
