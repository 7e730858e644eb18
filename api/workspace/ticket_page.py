"""What the ticket page shows, read in one go: the ticket's live view (from the
workflow), its record and deliveries (from the event store), the customer's other
tickets (from the read model) and the suggestions for what the customer said."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from activities.outbox import Delivery, deliveries
from api.access import Caller, RoleKind
from api.deps import Services
from api.errors import ApiError
from api.read_model import Sort, TicketFilter, list_tickets
from api.routes.knowledge import suggestions_for
from api.workspace.queue import Row, as_row
from stores.erasure import is_erased
from stores.suggestions import Suggestion
from stores.thread import ThreadEntry, conversation
from workflows import events as ev
from workflows.contracts import CustomerMessage, TicketView
from workflows.events import Audience, DomainEvent
from workflows.primitives import ContextSnapshot
from workflows.privacy import mask_ip

OTHER_TICKETS = 10
SUGGESTIONS = 5


@dataclass(frozen=True)
class Said:
    """A line of the conversation, and whether its message reached the customer."""

    entry: ThreadEntry
    internal: bool
    delivered_at: datetime | None = None
    failed: bool = False
    on_its_way: bool = False


@dataclass(frozen=True)
class Alert:
    """A warning or an escalation already sent."""

    at: datetime
    kind: str
    to: list[str]


@dataclass(frozen=True)
class TicketPage:
    view: TicketView
    conversation: list[Said]
    alerts: list[Alert]
    context: ContextSnapshot | None
    masked_ip: str | None
    others: list[Row]
    suggestions: list[Suggestion]


def said(entries: list[ThreadEntry], sent: list[Delivery]) -> list[Said]:
    """Each entry with its delivery to the customer, matched by the event that sent it."""
    to_customer: dict[int, Delivery] = {}
    for sent_one in sent:
        if sent_one.customer_facing and sent_one.event_seq is not None:
            to_customer.setdefault(sent_one.event_seq, sent_one)
    lines = []
    for entry in entries:
        internal = entry.audience is Audience.INTERNAL
        delivery = None if internal or entry.seq is None else to_customer.get(entry.seq)
        if delivery is None or entry.actor.role.value == "customer":
            lines.append(Said(entry, internal))
            continue
        lines.append(
            Said(
                entry,
                internal,
                delivered_at=delivery.delivered_at,
                failed=delivery.failed_at is not None,
                on_its_way=delivery.delivered_at is None and delivery.failed_at is None,
            )
        )
    return lines


def alerts(events: list[DomainEvent]) -> list[Alert]:
    found = []
    for event in events:
        match event.data:
            case ev.SlaWarned() as warned:
                found.append(Alert(event.occurred_at, "sla_warned", list(warned.notified)))
            case ev.SlaBreached():
                found.append(Alert(event.occurred_at, "sla_breached", []))
            case ev.SlaEscalated() as escalated:
                found.append(Alert(event.occurred_at, "sla_escalated", [escalated.to]))
            case ev.FirstResponseBreached():
                found.append(Alert(event.occurred_at, "first_response_breached", []))
            case ev.UpgradeReviewConvened():
                found.append(Alert(event.occurred_at, "upgrade_review_convened", []))
    return found


def in_scope(caller: Caller, view: TicketView) -> None:
    """A department works on the tickets it holds a work order on, and sees no other."""
    if caller.kind is RoleKind.DEPARTMENT and caller.scope not in view.departments:
        raise ApiError(403, "forbidden", f"{caller.scope} holds no work order on this ticket")


async def may_watch(svc: Services, ticket_id: str, caller: Caller) -> None:
    """Whether the caller may watch the ticket live (who has it open, who types)."""
    if caller.kind is RoleKind.DEPARTMENT:
        in_scope(caller, await svc.call(svc.tickets.view(ticket_id)))


async def read_ticket_page(
    svc: Services, ticket_id: str, caller: Caller, *, whole: bool = True
) -> TicketPage:
    """The page; with `whole=False`, only what a change can alter (the header, alerts and
    conversation): the customer's other tickets and the suggestions are left out."""
    view = await svc.call(svc.tickets.view(ticket_id))
    in_scope(caller, view)
    if await svc.call(is_erased(svc.pool, ticket_id)):
        raise ApiError(410, "ticket_erased", "this ticket's customer data was erased")
    (events, messages), sent, others, suggested = await asyncio.gather(
        svc.call(svc.events.thread(ticket_id)),
        svc.call(deliveries(svc.pool, ticket_id)),
        _others(svc, view, caller) if whole else _nothing(),
        _suggestions(svc, view, caller) if whole else _nothing(),
    )

    def render(message: CustomerMessage) -> str:
        return svc.templates.render(message, svc.time_zone).text

    opened = next((e.data for e in events if isinstance(e.data, ev.TicketOpened)), None)
    context = opened.context if opened is not None else None
    return TicketPage(
        view=view,
        conversation=said(conversation(events, messages, render), sent),
        alerts=alerts(events),
        context=context,
        masked_ip=mask_ip(context.ip) if context is not None and context.ip else None,
        others=[row for row in others if row.ticket.ticket_id != ticket_id][:OTHER_TICKETS],
        suggestions=suggested,
    )


async def _others(svc: Services, view: TicketView, caller: Caller) -> list[Row]:
    """The customer's tickets, newest first (this one too: the caller leaves it out). A
    department sees those it holds work orders on."""
    department = caller.scope if caller.kind is RoleKind.DEPARTMENT else None
    chosen = TicketFilter(customer_id=view.customer_id, department=department)
    page = await svc.call(list_tickets(svc.pool, chosen, OTHER_TICKETS + 1, None, Sort.NEWEST))
    return [as_row(ticket) for ticket in page.items]


async def _nothing() -> list[Any]:
    return []


async def _suggestions(svc: Services, view: TicketView, caller: Caller) -> list[Suggestion]:
    """Departments answer work orders, not customers: they get no reply scripts."""
    if caller.kind is RoleKind.DEPARTMENT:
        return []
    return await suggestions_for(svc, view, SUGGESTIONS)
