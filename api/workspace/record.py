"""A ticket's record, a click from its page: every typed event in order, and every
delivery (what each recipient got, when, or why not), read from the event store with the
session, as the JSON routes read them with a key."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from activities.outbox import deliveries
from api.deps import TicketIdPath, known
from api.errors import ApiError
from api.routes.reads import as_said
from api.workspace.ticket_page import in_scope
from api.workspace.web import AgentDep, Desk, DeskDep, draw, error_page
from stores.erasure import is_erased
from workflows import events as ev
from workflows.contracts import TicketView
from workflows.events import DomainEvent
from workflows.privacy import mask_ip

record = APIRouter(prefix="/app", include_in_schema=False)


async def _visible(found: Desk, ticket_id: str, me: AgentDep) -> TicketView:
    view = await found.svc.call(found.svc.tickets.view(known(ticket_id)))
    in_scope(me.caller, view)
    if await found.svc.call(is_erased(found.svc.pool, ticket_id)):
        raise ApiError(410, "ticket_erased", "this ticket's customer data was erased")
    return view


@record.get("/tickets/{ticket_id}/events")
async def events_page(ticket_id: TicketIdPath, me: AgentDep, found: DeskDep) -> HTMLResponse:
    try:
        view = await _visible(found, ticket_id, me)
        events = await found.svc.call(found.svc.events.events(ticket_id))
    except Exception as error:
        return error_page(found, me, error)
    shown = [(event, _shown_data(event)) for event in events]
    return draw(found, "events.html", me, view=view, events=shown)


def _shown_data(event: DomainEvent) -> str:
    """The event's fields as JSON, the customer's IP with its host part hidden (as on the
    ticket page)."""
    data = event.data
    if isinstance(data, ev.TicketOpened) and data.context is not None and data.context.ip:
        context = data.context.model_copy(update={"ip": mask_ip(data.context.ip)})
        data = data.model_copy(update={"context": context})
    return data.model_dump_json(exclude={"type"})


@record.get("/tickets/{ticket_id}/deliveries")
async def deliveries_page(ticket_id: TicketIdPath, me: AgentDep, found: DeskDep) -> HTMLResponse:
    try:
        view = await _visible(found, ticket_id, me)
        rows = await found.svc.call(deliveries(found.svc.pool, ticket_id))
    except Exception as error:
        return error_page(found, me, error)
    said = [as_said(found.svc, row) for row in rows]
    return draw(found, "deliveries.html", me, view=view, deliveries=said)
