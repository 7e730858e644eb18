"""Events and batches for the activity tests, shaped like the workflow emits them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from workflows.contracts import EventBatch
from workflows.events import DomainEvent, EventType
from workflows.primitives import SYSTEM, Actor
from workflows.vocabulary import Role

T0 = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
AGENT = Actor(id="agent-7", role=Role.AGENT)
CUSTOMER = Actor(id="cust-42", role=Role.CUSTOMER)


def new_ticket_id() -> str:
    return f"T-{uuid.uuid4()}"


def event(
    ticket_id: str,
    seq: int,
    type: EventType,
    data: dict[str, Any] | None = None,
    *,
    at: datetime | None = None,
    actor: Actor = SYSTEM,
) -> DomainEvent:
    """An event as the store reads one back: `data` in the stored (untyped) shape, on top
    of a minimal valid payload of its type, and upcast like stored events are."""
    return DomainEvent.model_validate(
        {
            "ticket_id": ticket_id,
            "seq": seq,
            "type": type,
            "occurred_at": at if at is not None else T0 + timedelta(minutes=seq),
            "actor": actor,
            "data": {**MINIMAL[type], **(data or {})},
        }
    )


# A valid payload of every event type, with every field a person's words go in.
MINIMAL: dict[EventType, dict[str, Any]] = {
    EventType.TICKET_OPENED: {
        "channel": "email",
        "tier": "standard",
        "customer_id": "cust-42",
        "category": "business_inquiry",
        "topic": "other",
        "priority": "B",
        "tag": "咨詢-其他-B級",
        "reason": "no keyword matched",
        "sla_due_at": (T0 + timedelta(hours=24)).isoformat(),
        "first_response_due_at": (T0 + timedelta(hours=24)).isoformat(),
        "subject": "无法提现",
        "description": "提現一直失敗",
        "locale": "zh-CN",
    },
    EventType.DUPLICATE_INTAKE: {},
    EventType.ACKNOWLEDGED: {"expect_progress_by": T0.isoformat()},
    EventType.CLASSIFIED: {
        "category": "technical_fault",
        "topic": "payment",
        "priority": "A",
        "tag": "故障-支付-A級",
        "reason": "the customer was charged twice",
    },
    EventType.EMERGENCY_GROUP_CONVENED: {"groups": ["tech"]},
    EventType.RISK_CONTROL_STARTED: {},
    EventType.FIRST_RESPONDED: {"seconds": 12.0, "within_target": True},
    EventType.FIRST_RESPONSE_BREACHED: {"target_seconds": 30.0},
    EventType.AGENT_REPLIED: {"message": "我们正在处理"},
    EventType.NOTE_ADDED: {"text": "客户是老用户,先查订单"},
    EventType.ASSIGNED: {"agent_id": "agent-7"},
    EventType.DISPATCHED: {"departments": ["tech"], "transfers": 1, "note": "please check"},
    EventType.PROGRESS_POSTED: {"department": "tech", "response_seconds": 60.0, "note": "found it"},
    EventType.WORK_ORDER_DONE: {"department": "tech"},
    EventType.PROGRESS_REMINDED: {"departments": ["tech"]},
    EventType.MILESTONE_RECORDED: {"milestone": "cause_located", "meets_sla": True, "note": "db"},
    EventType.SLA_PAUSED: {"reason": "waiting_on_customer"},
    EventType.SLA_RESUMED: {"paused_seconds": 3600.0, "total_paused_seconds": 3600.0},
    EventType.SLA_WARNED: {
        "share": 0.75,
        "sla_due_at": T0.isoformat(),
        "notified": ["agent:agent-7"],
    },
    EventType.SLA_ESCALATED: {"level": 2, "to": "service_lead"},
    EventType.SLA_BREACHED: {
        "priority": "A",
        "milestone": "cause_located",
        "due_at": T0.isoformat(),
    },
    EventType.UPGRADE_REVIEW_CONVENED: {"number": 1},
    EventType.REVIEW_DECISION_RECORDED: {"decision": "hotfix tonight", "attendees": ["lead-1"]},
    EventType.PARTNER_ENGAGED: {
        "partner": "sf-express",
        "expected_by": T0.isoformat(),
        "problem": "parcel lost",
        "checkpoints": ["scan"],
    },
    EventType.PARTNER_UPDATE_SENT: {"partner": "sf-express", "number": 1},
    EventType.PARTNER_ANSWERED: {"partner": "sf-express", "final": True, "answer": "found"},
    EventType.RESOLVED: {
        "result_kind": "technical",
        "root_cause": "產品缺陷-支付流程",
        "resolution_seconds": 600.0,
        "message": "fixed",
    },
    EventType.CUSTOMER_REPLIED: {"kind": "message", "text": "还是不行"},
    EventType.REOPENED: {"count": 1},
    EventType.FEEDBACK_REQUESTED: {"until": T0.isoformat()},
    EventType.CSAT_RECORDED: {"score": 4, "text": "quick"},
    EventType.NPS_RECORDED: {"score": 9},
    EventType.STATUS_CHANGED: {"previous": "new", "to": "in_progress"},
    EventType.ACTION_REJECTED: {"action": "assign", "reason": "already assigned"},
    EventType.DELIVERY_FAILED: {
        "dedupe_key": "t:3:work_order:1:finance",
        "kind": "work_order",
        "destination": "queue://finance",
        "attempts": 9,
        "error": "HTTP 503",
    },
    EventType.CLOSED: {"reason": "long_term_plan", "long_term_plan": "next release"},
}


def batch(events: list[DomainEvent]) -> EventBatch:
    return EventBatch(ticket_id=events[0].ticket_id, events=events)


def lifecycle(ticket_id: str) -> list[DomainEvent]:
    """An E-level payment fault: opened, escalated, dispatched twice, resolved,
    reopened once, resolved again, rated and closed on the customer's confirmation."""
    steps: list[tuple[EventType, dict[str, Any], Actor]] = [
        (
            EventType.TICKET_OPENED,
            {
                "channel": "app_chat",
                "tier": "vip",
                "customer_id": "cust-42",
                "category": "technical_fault",
                "topic": "payment",
                "priority": "A",
                "tag": "故障-支付-A級",
                "sla_due_at": (T0 + timedelta(hours=4)).isoformat(),
                "first_response_due_at": (T0 + timedelta(seconds=30)).isoformat(),
                "reason": "支付 keyword",
            },
            SYSTEM,
        ),
        (
            EventType.CLASSIFIED,
            {
                "category": "technical_fault",
                "topic": "payment",
                "priority": "E",
                "tag": "故障-支付-E級",
                "reason": "funds debited twice",
                "previous_tag": "故障-支付-A級",
                "automatic": False,
                "sla_due_at": (T0 + timedelta(minutes=32)).isoformat(),
            },
            AGENT,
        ),
        (EventType.EMERGENCY_GROUP_CONVENED, {"groups": ["tech", "operations"]}, SYSTEM),
        (EventType.FIRST_RESPONDED, {"seconds": 12.5, "within_target": True}, AGENT),
        (EventType.ASSIGNED, {"agent_id": "agent-7"}, AGENT),
        (EventType.STATUS_CHANGED, {"from": "new", "to": "in_progress"}, AGENT),
        (EventType.DISPATCHED, {"departments": ["tech"], "transfers": 1}, AGENT),
        (EventType.STATUS_CHANGED, {"from": "in_progress", "to": "waiting_on_department"}, AGENT),
        (EventType.DISPATCHED, {"departments": ["tech", "operations"], "transfers": 2}, AGENT),
        (EventType.PROGRESS_POSTED, {"department": "tech", "response_seconds": 600.0}, AGENT),
        (
            EventType.SLA_BREACHED,
            {
                "priority": "E",
                "due_at": (T0 + timedelta(minutes=32)).isoformat(),
                "milestone": "temporary_fix",
            },
            SYSTEM,
        ),
        (
            EventType.RESOLVED,
            {
                "result_kind": "technical",
                "root_cause": "產品缺陷-支付流程",
                "resolution_seconds": 720.0,
            },
            AGENT,
        ),
        (
            EventType.STATUS_CHANGED,
            {"from": "waiting_on_department", "to": "resolved_awaiting_confirmation"},
            AGENT,
        ),
        (EventType.CUSTOMER_REPLIED, {"kind": "not_solved"}, CUSTOMER),
        (EventType.REOPENED, {"count": 1}, CUSTOMER),
        (
            EventType.STATUS_CHANGED,
            {"from": "resolved_awaiting_confirmation", "to": "in_progress"},
            SYSTEM,
        ),
        (
            EventType.RESOLVED,
            {
                "result_kind": "compensation",
                "root_cause": "流程漏洞-退款審核",
                "resolution_seconds": 1020.0,
            },
            AGENT,
        ),
        (
            EventType.STATUS_CHANGED,
            {"from": "in_progress", "to": "resolved_awaiting_confirmation"},
            AGENT,
        ),
        (EventType.CSAT_RECORDED, {"score": 4}, CUSTOMER),
        (EventType.NPS_RECORDED, {"score": 9}, CUSTOMER),
        (EventType.CLOSED, {"reason": "customer_confirmed", "root_cause": None}, CUSTOMER),
    ]
    return [
        event(ticket_id, seq, type_, data, actor=actor)
        for seq, (type_, data, actor) in enumerate(steps, start=1)
    ]
