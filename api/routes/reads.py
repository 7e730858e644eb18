"""Reads of tickets: the live view from the workflow, the thread, deliveries and events
from the event store, and lists from the read model. A department key reads only the
tickets that hold its work orders."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from temporalio.service import RPCError, RPCStatusCode

from activities.delivery import words_of
from activities.outbox import Delivery, deliveries
from api.access import Caller, RoleKind, Rule
from api.deps import Services, Svc, TicketIdPath, known, require, utc
from api.errors import TICKET_RESPONSES, ApiError, Problem
from api.read_model import Sort, TicketFilter, list_tickets
from api.schemas import EventOut, EventPage, TicketPage
from stores.erasure import is_erased
from stores.thread import Thread, conversation
from workflows.contracts import CustomerMessage, TicketView
from workflows.vocabulary import Category, Priority, TicketStatus, Tier

MAX_EVENTS_PAGE = 500

reads = APIRouter(tags=["reads"], responses=TICKET_RESPONSES)


class DeliveryPage(BaseModel):
    ticket_id: str
    deliveries: list[Delivery]


def _erased() -> ApiError:
    return ApiError(
        410,
        "ticket_erased",
        "this ticket's customer data was erased: its events and thread remain, "
        "without what the customer said",
    )


async def _visible_view(svc: Services, ticket_id: str, caller: Caller) -> TicketView:
    try:
        view = await svc.call(svc.tickets.view(known(ticket_id)))
    except RPCError as error:
        # Erasure deletes the ticket's histories; the store still knows the ticket.
        if error.status is RPCStatusCode.NOT_FOUND and await svc.call(
            is_erased(svc.pool, ticket_id)
        ):
            raise _erased() from None
        raise
    # Only a closed ticket can be erased; its history is deleted in the background.
    if view.status is TicketStatus.CLOSED and await svc.call(is_erased(svc.pool, ticket_id)):
        raise _erased()
    if caller.kind is RoleKind.DEPARTMENT and caller.scope not in view.departments:
        raise ApiError(403, "forbidden", f"{caller.scope} holds no work order on this ticket")
    return view


@reads.get(
    "/v1/tickets/{ticket_id}",
    responses={410: {"model": Problem, "description": "the ticket's customer data was erased"}},
)
async def show_ticket(
    ticket_id: TicketIdPath,
    svc: Svc,
    caller: Annotated[Caller, Depends(require(Rule.READ_TICKET))],
) -> TicketView:
    """The live state, from the ticket itself: status, deadlines, what it waits for."""
    return await _visible_view(svc, ticket_id, caller)


@reads.get("/v1/tickets/{ticket_id}/thread")
async def ticket_thread(
    ticket_id: TicketIdPath,
    svc: Svc,
    caller: Annotated[Caller, Depends(require(Rule.READ_EVENTS))],
) -> Thread:
    """The conversation in order, from the event store: who said what, when, through
    which channel, and whether the customer reads it or it stays internal."""
    ticket_id = known(ticket_id)
    if caller.kind is RoleKind.DEPARTMENT:
        await _visible_view(svc, ticket_id, caller)
    events, messages = await svc.call(svc.events.thread(ticket_id))
    if not events:
        # Not stored yet (just opened) or not a ticket at all: Temporal knows which.
        await svc.call(svc.tickets.handle(ticket_id).describe())
    erased = await svc.call(is_erased(svc.pool, ticket_id))

    def render(message: CustomerMessage) -> str:
        return svc.templates.render(message, svc.time_zone).text

    entries = conversation(events, messages, render, erased=erased)
    return Thread(ticket_id=ticket_id, entries=entries, erased=erased)


@reads.get("/v1/tickets/{ticket_id}/deliveries")
async def ticket_deliveries(
    ticket_id: TicketIdPath,
    svc: Svc,
    caller: Annotated[Caller, Depends(require(Rule.READ_EVENTS))],
) -> DeliveryPage:
    """What the customer and each department, partner and supervisor received, and when;
    what is still on its way (as it will be said), and what failed."""
    ticket_id = known(ticket_id)
    if caller.kind is RoleKind.DEPARTMENT:
        await _visible_view(svc, ticket_id, caller)
    rows = await svc.call(deliveries(svc.pool, ticket_id))
    if not rows:
        await svc.call(svc.tickets.handle(ticket_id).describe())
    return DeliveryPage(ticket_id=ticket_id, deliveries=[as_said(svc, row) for row in rows])


def as_said(svc: Services, row: Delivery) -> Delivery:
    """A row still on its way, with the words (and locale) it will be delivered with."""
    if row.text is not None:
        return row
    locale, text = words_of(row.key, row.kind, row.payload, svc.templates, svc.policy)
    return row.model_copy(update={"text": text, "locale": locale})


@reads.get("/v1/tickets/{ticket_id}/events")
async def ticket_events(
    ticket_id: TicketIdPath,
    svc: Svc,
    caller: Annotated[Caller, Depends(require(Rule.READ_EVENTS))],
    after_seq: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS_PAGE)] = 100,
) -> EventPage:
    """The ticket's domain events from the event store, in order."""
    ticket_id = known(ticket_id)
    if caller.kind is RoleKind.DEPARTMENT:
        await _visible_view(svc, ticket_id, caller)
    stored = await svc.call(svc.events.events(ticket_id, after_seq))
    if not stored and after_seq == 0:
        # Not stored yet (just opened) or not a ticket at all: Temporal knows which.
        await svc.call(svc.tickets.handle(ticket_id).describe())
    page = stored[:limit]
    return EventPage(
        ticket_id=ticket_id,
        events=[
            EventOut(
                seq=e.seq,
                type=e.type.value,
                occurred_at=e.occurred_at,
                actor_id=e.actor.id,
                actor_role=e.actor.role.value,
                data=e.data,
            )
            for e in page
        ],
        next_after_seq=page[-1].seq if len(stored) > limit else None,
        erased=await svc.call(is_erased(svc.pool, ticket_id)),
    )


@reads.get("/v1/tickets")
async def search_tickets(
    svc: Svc,
    caller: Annotated[Caller, Depends(require(Rule.LIST))],
    status: Annotated[list[TicketStatus] | None, Query()] = None,
    priority: Annotated[list[Priority] | None, Query()] = None,
    category: Annotated[list[Category] | None, Query()] = None,
    tier: Annotated[list[Tier] | None, Query()] = None,
    department: Annotated[str | None, Query(max_length=128)] = None,
    assignee: Annotated[str | None, Query(max_length=128)] = None,
    unassigned: Annotated[bool | None, Query(description="true: nobody assigned yet")] = None,
    breached: Annotated[bool | None, Query(description="SLA breached")] = None,
    paused: Annotated[
        bool | None, Query(description="SLA clock paused (waiting on the customer)")
    ] = None,
    opened_after: Annotated[datetime | None, Query(description="inclusive")] = None,
    opened_before: Annotated[datetime | None, Query(description="exclusive")] = None,
    sort: Annotated[
        Sort,
        Query(description="attention: SLA due soonest (overdue first), then priority; newest"),
    ] = Sort.ATTENTION,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> TicketPage:
    """Tickets from the read model, what needs attention first. Repeat a filter for "any
    of" (`?status=new&status=in_progress`); follow `next_cursor` for the next page. A
    department key sees only tickets that hold its work orders."""
    if caller.kind is RoleKind.DEPARTMENT:
        if department not in (None, caller.scope):
            raise ApiError(403, "forbidden", f"role {caller.role} lists only its own tickets")
        department = caller.scope
    filters = TicketFilter(
        status=[s.value for s in status or []],
        priority=[p.value for p in priority or []],
        category=[c.value for c in category or []],
        tier=[t.value for t in tier or []],
        department=department,
        assignee=assignee,
        unassigned=unassigned,
        breached=breached,
        paused=paused,
        opened_after=utc(opened_after, "opened_after"),
        opened_before=utc(opened_before, "opened_before"),
    )
    return await svc.call(list_tickets(svc.pool, filters, limit, cursor, sort))
