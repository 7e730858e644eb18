"""What operators and callers see of a ticket: its search attributes, the Temporal UI's
current details, the `view` query (which every update also returns) and its outcome.

Pure functions of the state, the policy and the instant: the workflow publishes them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio.common import SearchAttributeUpdate

from workflows import search_attributes as sa
from workflows import sla_clock, ticket_rules
from workflows.contracts import Deadlines, TicketOutcome, TicketState, TicketView
from workflows.policy import ServicePolicy

# The deadlines that are promises to the customer (and their warnings): the ticket's
# "next deadline" for operators. The routine ones (daily check, reviews, partner updates,
# auto-close) stay out, so the search attribute changes only when a promise does, not at
# every daily timer (which would cost a history event each).
PROMISES = ("first_response", "sla_warning", "sla", "escalation")
_UNSET = object()


def next_deadline(
    deadlines: Deadlines, among: tuple[str, ...] | None = None
) -> tuple[str, datetime | None]:
    """The earliest pending deadline (of `among`, or of all), and its name."""
    pending = [
        (due, name)
        for name, due in deadlines.model_dump().items()
        if due is not None and (among is None or name in among)
    ]
    if not pending:
        return "nothing", None
    due, name = min(pending)
    return name, due


def search_attributes(state: TicketState) -> dict[str, Any]:
    """What operators filter tickets on, by attribute name."""
    sla = state.sla_clock
    _, next_at = next_deadline(state.deadlines, PROMISES)
    return {
        sa.TICKET_SLA_PAUSED.name: sla is not None and sla.paused_since is not None,
        sa.TICKET_NEXT_DEADLINE.name: next_at,
        sa.TICKET_STATUS.name: state.status.value,
        sa.TICKET_PRIORITY.name: state.classification.priority.value,
        sa.TICKET_CATEGORY.name: state.classification.category.value,
        sa.TICKET_TOPIC.name: state.classification.topic.value,
        sa.TICKET_CHANNEL.name: state.intake.channel.value,
        sa.TICKET_TIER.name: state.intake.tier.value,
        sa.TICKET_DEPARTMENTS.name: sorted(state.work_orders),
        sa.TICKET_TAGS.name: [state.tag],
        sa.TICKET_SLA_DEADLINE.name: state.deadlines.sla,
        sa.TICKET_SLA_BREACHED.name: state.sla_breached,
        sa.TICKET_ESCALATED.name: state.escalated,
        sa.TICKET_ROOT_CAUSE.name: state.root_cause,
    }


def changed_attributes(
    wanted: dict[str, Any], indexed: dict[str, Any]
) -> list[SearchAttributeUpdate[Any]]:
    """Only what changed since the last upsert: each upsert is a history event."""
    return [
        key.value_set(wanted[key.name]) if wanted[key.name] is not None else key.value_unset()
        for key in sa.ALL
        if key.name in wanted and indexed.get(key.name, _UNSET) != wanted[key.name]
    ]


def details(state: TicketState, policy: ServicePolicy, now: datetime) -> str:
    """The Temporal UI's current details: status, what it waits for, every deadline."""
    lines = [
        f"**{state.status.value}** · `{state.tag}`",
        f"waiting for: {ticket_rules.waiting_for(state)}",
    ]
    for name, due in state.deadlines.model_dump().items():
        if due is not None:
            lines.append(f"- {name.replace('_', ' ')} due {due:%Y-%m-%d %H:%M:%S} UTC")
    if state.sla_breached:
        lines.append("- ⚠ SLA breached")
    paused_since, paused = sla_clock.paused(state, policy, now)
    if paused_since is not None:
        lines.append(f"- ⏸ SLA paused since {paused_since:%Y-%m-%d %H:%M:%S} UTC")
    if paused:
        lines.append(f"- SLA paused {paused.total_seconds() / 3600:.2f} h in all")
    return "\n".join(lines)


def view(state: TicketState, policy: ServicePolicy, now: datetime) -> TicketView:
    intake = state.intake
    paused_since, paused = sla_clock.paused(state, policy, now)
    next_name, next_at = next_deadline(state.deadlines, PROMISES)
    return TicketView(
        ticket_id=state.ticket_id,
        status=state.status,
        subject=intake.subject,
        description=intake.description,
        customer_id=intake.customer_id,
        tier=intake.tier,
        channel=intake.channel,
        locale=intake.locale or policy.default_locale,
        classification=state.classification,
        tag=state.tag,
        assignee=state.assignee,
        departments=sorted(state.work_orders),
        open_work_orders=sorted(d for d, o in state.work_orders.items() if not o.done),
        deadlines=state.deadlines,
        sla_breached=state.sla_breached,
        escalated=state.escalated,
        root_cause=state.root_cause,
        reopen_count=state.reopen_count,
        events_recorded=state.next_seq - 1,
        waiting_for=ticket_rules.waiting_for(state),
        partners=sorted(state.partners.values(), key=lambda p: p.engaged_at),
        last_message=state.last_message,
        sla_paused_since=paused_since,
        sla_paused_seconds=paused.total_seconds(),
        next_deadline=next_name if next_at is not None else None,
        next_deadline_at=next_at,
    )


def outcome(state: TicketState) -> TicketOutcome:
    return TicketOutcome(
        ticket_id=state.ticket_id,
        status=state.status,
        close_reason=state.close_reason,
        root_cause=state.root_cause,
        duplicate=state.duplicate_of_earlier_run,
    )
