"""The `tickets` read model as a pure fold over a ticket's events.

`project(row, event)` reads no clock and touches no database, so the same code rebuilds
the table from scratch, keeps it current inside `EventStore.append_events`, and is
tested without PostgreSQL. Events at or below `row.last_seq` are ignored, which makes
re-applying a batch harmless.

Events are typed (`workflows.events`): a value of the wrong shape never reaches the
fold, it is refused when the event is built or read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from workflows import events as ev
from workflows.events import DomainEvent
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
    # Since the typed record (0002): the intake's subject, and the SLA instant still to
    # keep (None once met or closed), which orders the list by what needs attention.
    subject: str | None = None
    due_at: datetime | None = None
    csat: int | None = None
    nps: int | None = None
    # Since the SLA clock (0004): paused since when (None: running), and paused in all
    # (on the SLA's clock: working time on a business clock).
    sla_paused_since: datetime | None = None
    sla_paused_seconds: float = 0.0
    # Since the workspace (0010): the first reply still owed (None once sent or closed),
    # and when the SLA still to keep was first warned of (None until then, and once it is
    # met, rebased or closed).
    first_response_due_at: datetime | None = None
    sla_warned_at: datetime | None = None
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
    return row.model_copy(update=changes)


def project_all(row: TicketRow | None, events: list[DomainEvent]) -> TicketRow | None:
    """Fold events in seq order (the order they happened in, whatever the list order)."""
    for event in sorted(events, key=lambda item: item.seq):
        row = project(row, event)
    return row


def _changes(row: TicketRow, event: DomainEvent) -> dict[str, Any]:
    match event.data:
        case ev.TicketOpened() as opened:
            return {
                "status": TicketStatus.NEW.value,
                "opened_at": event.occurred_at,
                "channel": opened.channel.value,
                "tier": opened.tier.value,
                "customer_id": opened.customer_id,
                "subject": opened.subject,
                "due_at": opened.sla_due_at,
                "first_response_due_at": opened.first_response_due_at,
                **_classification(opened),
                "sla_due_at": opened.sla_due_at,
            }
        case ev.Classified() as classified:
            # sla_due_at is None once the SLA is met: the new priority promises nothing more.
            changes = _classification(classified)
            if classified.sla_due_at is not None:
                changes["sla_due_at"] = classified.sla_due_at
                if row.status != TicketStatus.CLOSED.value:
                    changes["due_at"] = classified.sla_due_at
                    # A new promise: its warnings start again (sla_clock.rebase).
                    changes["sla_warned_at"] = None
            return changes
        case ev.Assigned() as assigned:
            return {"assignee": assigned.agent_id}
        case ev.FirstResponded() as responded:
            # Only the first one counts: it is the "first response time" metric.
            if row.first_response_at is not None:
                return {}
            return {
                "first_response_at": event.occurred_at,
                "first_response_seconds": responded.seconds,
                "first_response_due_at": None,
            }
        case ev.Dispatched() as dispatched:
            added = [name for name in dispatched.departments if name not in row.departments]
            return {"departments": (*row.departments, *added), "transfers": dispatched.transfers}
        case ev.MilestoneRecorded(meets_sla=True):
            return {"due_at": None, "sla_paused_since": None, "sla_warned_at": None}
        case ev.SlaWarned():
            return {} if row.sla_warned_at is not None else {"sla_warned_at": event.occurred_at}
        case ev.SlaPaused():
            return {"sla_paused_since": event.occurred_at, "due_at": None}
        case ev.SlaResumed() as resumed:
            return {
                "sla_paused_since": None,
                "sla_paused_seconds": resumed.total_paused_seconds,
                "due_at": resumed.sla_due_at,
                "sla_due_at": resumed.sla_due_at,
            }
        case ev.SlaBreached():
            return {"sla_breached": True, "escalated": True}
        case ev.UpgradeReviewConvened():
            return {"escalated": True}
        case ev.Resolved() as resolved:
            # The result reached the customer: no first reply is owed any more.
            return {
                "resolved_at": event.occurred_at,
                "root_cause": resolved.root_cause,
                "first_response_due_at": None,
            }
        case ev.Reopened() as reopened:
            # "Not solved": the earlier resolution no longer stands; the next `resolved`
            # sets resolved_at again, so resolution-time metrics measure the real one.
            return {"reopen_count": reopened.count, "resolved_at": None}
        case ev.CsatRecorded() as csat:
            return {"csat": csat.score}
        case ev.NpsRecorded() as nps:
            return {"nps": nps.score}
        case ev.StatusChanged() as changed:
            return {"status": changed.to.value}
        case ev.Closed() as closed:
            changes = {
                "status": TicketStatus.CLOSED.value,
                "closed_at": event.occurred_at,
                "close_reason": closed.reason.value,
                "due_at": None,
                "sla_paused_since": None,
                "first_response_due_at": None,
                "sla_warned_at": None,
            }
            if closed.root_cause is not None:
                changes["root_cause"] = closed.root_cause
            return changes
        case _:
            # The rest (acknowledged, progress_posted, partner_*, ...) only feed metrics
            # and the thread, which read them from ticket_events directly.
            return {}


def _classification(data: ev.TicketOpened | ev.Classified) -> dict[str, Any]:
    return {
        "category": data.category.value,
        "topic": data.topic.value,
        "priority": data.priority.value,
        "tag": data.tag,
    }
