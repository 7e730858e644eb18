"""The `tickets` read model as a pure fold over a ticket's events.

`project(row, event)` reads no clock and touches no database, so the same code rebuilds
the table from scratch, keeps it current inside `EventStore.append_events`, and is
tested without PostgreSQL. Events at or below `row.last_seq` are ignored, which makes
re-applying a batch harmless.

Vocabulary values (status, priority, ...) are stored as the plain strings the workflow
wrote, so a grown vocabulary never makes the read model refuse an event; only values
of the wrong shape (a score that is not a number) do, as a ValueError.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from workflows.contracts import DomainEvent, EventType
from workflows.vocabulary import TicketStatus


class ProjectionError(ValueError):
    """An event that cannot belong to this row."""


class TicketRow(BaseModel):
    """One row of the `tickets` table; field names are its column names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ticket_id: str
    status: str = TicketStatus.NEW.value
    priority: str | None = None
    category: str | None = None
    topic: str | None = None
    channel: str | None = None
    tier: str | None = None
    customer_id: str | None = None
    tag: str | None = None
    assignee: str | None = None
    departments: tuple[str, ...] = ()
    transfers: int = 0
    sla_due_at: datetime | None = None
    sla_breached: bool = False
    escalated: bool = False
    root_cause: str | None = None
    reopen_count: int = 0
    first_response_seconds: float | None = None
    opened_at: datetime | None = None
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
    csat: int | None = None
    nps: int | None = None
    # The seq of the last event applied: the projection's checkpoint.
    last_seq: int = 0
    # When the ticket last changed (the last event's occurred_at), not when the row was
    # written: keeps the fold deterministic and is what an operator wants to sort by.
    updated_at: datetime


COLUMNS: tuple[str, ...] = tuple(TicketRow.model_fields)


def project(row: TicketRow | None, event: DomainEvent) -> TicketRow:
    """The row after `event`; `row` is None for a ticket not seen before."""
    if row is None:
        row = TicketRow(ticket_id=event.ticket_id, updated_at=event.occurred_at)
    elif row.ticket_id != event.ticket_id:
        raise ProjectionError(
            f"event {event.ticket_id}#{event.seq} cannot apply to ticket {row.ticket_id}"
        )
    if event.seq <= row.last_seq:
        return row
    changes = _changes(row, event)
    changes["last_seq"] = event.seq
    changes["updated_at"] = event.occurred_at
    # Validate rather than model_copy: event data is free-form JSON, and a "5" score or
    # an ISO string must become the column's type here, not fail later in asyncpg.
    return TicketRow.model_validate(row.model_dump() | changes)


def project_all(row: TicketRow | None, events: list[DomainEvent]) -> TicketRow | None:
    """Fold events in seq order (the order they happened in, whatever the list order)."""
    for event in sorted(events, key=lambda item: item.seq):
        row = project(row, event)
    return row


def _changes(row: TicketRow, event: DomainEvent) -> dict[str, Any]:
    data = event.data
    match event.type:
        case EventType.TICKET_OPENED:
            return {
                "status": TicketStatus.NEW.value,
                "opened_at": event.occurred_at,
                **_present(data, "channel", "tier", "customer_id"),
                **_classification(data),
            }
        case EventType.CLASSIFIED:
            return _classification(data)
        case EventType.ASSIGNED:
            return _present(data, assignee="agent_id")
        case EventType.FIRST_RESPONDED:
            # Only the first one counts: it is the "first response time" metric.
            if row.first_response_at is not None:
                return {}
            return {
                "first_response_at": event.occurred_at,
                "first_response_seconds": _number(data.get("seconds")),
            }
        case EventType.DISPATCHED:
            added = [name for name in data.get("departments", []) if name not in row.departments]
            changes: dict[str, Any] = {"departments": (*row.departments, *added)}
            if data.get("transfers") is not None:
                changes["transfers"] = int(data["transfers"])
            return changes
        case EventType.SLA_BREACHED:
            return {"sla_breached": True, "escalated": True}
        case EventType.UPGRADE_REVIEW_CONVENED:
            return {"escalated": True}
        case EventType.RESOLVED:
            return {"resolved_at": event.occurred_at, **_present(data, "root_cause")}
        case EventType.REOPENED:
            # "Not solved": the earlier resolution no longer stands; the next `resolved`
            # sets resolved_at again, so resolution-time metrics measure the real one.
            return {
                "reopen_count": int(data.get("count", row.reopen_count + 1)),
                "resolved_at": None,
            }
        case EventType.CSAT_RECORDED:
            return _present(data, csat="score")
        case EventType.NPS_RECORDED:
            return _present(data, nps="score")
        case EventType.STATUS_CHANGED:
            return _present(data, status="to")
        case EventType.CLOSED:
            return {
                "status": TicketStatus.CLOSED.value,
                "closed_at": event.occurred_at,
                **_present(data, close_reason="reason"),
                **_present(data, "root_cause"),
            }
        case _:
            # The rest (acknowledged, progress_posted, partner_*, ...) only feed metrics,
            # which read them from ticket_events directly.
            return {}


def _classification(data: dict[str, Any]) -> dict[str, Any]:
    changes = _present(data, "category", "topic", "priority", "tag")
    if data.get("sla_due_at") is not None:
        changes["sla_due_at"] = _instant(data["sla_due_at"])
    return changes


def _present(data: dict[str, Any], *same: str, **renamed: str) -> dict[str, Any]:
    """Columns taken from data keys that are present and not null; `renamed` maps
    column → key. A missing key leaves the column as it was rather than erasing it."""
    pairs = [(key, key) for key in same] + list(renamed.items())
    return {column: data[key] for column, key in pairs if data.get(key) is not None}


def _instant(value: Any) -> datetime:
    instant = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    # The workflow writes aware UTC times; a naive one is read as UTC rather than as the
    # database server's local time.
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
