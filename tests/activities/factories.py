"""Events and batches for the activity tests, shaped like the workflow emits them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from workflows.contracts import SYSTEM, Actor, DomainEvent, EventBatch, EventType
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
    return DomainEvent(
        ticket_id=ticket_id,
        seq=seq,
        type=type,
        occurred_at=at if at is not None else T0 + timedelta(minutes=seq),
        actor=actor,
        data=data or {},
    )


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
