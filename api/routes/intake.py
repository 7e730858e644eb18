"""`POST /v1/tickets`: a ticket opened from any channel, once per idempotency key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from temporalio.service import RPCError, RPCStatusCode

from api.access import Caller, Rule
from api.client import OpenedTicket
from api.deps import Svc, require
from api.errors import COMMON_RESPONSES, ApiError, Problem, not_found
from api.schemas import IntakeRequest, TicketOpened, opened, opened_from_read_model
from stores.erasure import is_erased
from workflows.contracts import Intake
from workflows.primitives import Identifier
from workflows.vocabulary import TicketStatus

intake = APIRouter(tags=["intake"])


@intake.post(
    "/v1/tickets",
    status_code=201,
    response_model=TicketOpened,
    responses={
        **COMMON_RESPONSES,
        200: {"model": TicketOpened, "description": "this key had opened the ticket before"},
        201: {"model": TicketOpened, "description": "a new ticket"},
        202: {
            "model": TicketOpened,
            "description": "the ticket is started but could not be read back in time (an "
            "overloaded worker): its id, and its classification by the intake's rules; "
            "`GET` it later, never send it again as new",
        },
        410: {"model": Problem, "description": "this key's ticket was erased with its customer"},
    },
)
async def open_ticket(
    body: IntakeRequest,
    request: Request,
    response: Response,
    svc: Svc,
    caller: Annotated[Caller, Depends(require(Rule.INTAKE))],
    idempotency_key: Annotated[Identifier | None, Header(alias="Idempotency-Key")] = None,
) -> TicketOpened:
    """Open a ticket from any channel. The same idempotency key (header or body) always
    yields the same ticket: 201 the first time, 200 after. The caller's IP and user agent
    go into the problem snapshot from the request itself."""
    key = _idempotency_key(idempotency_key, body.idempotency_key)
    user_agent = request.headers.get("user-agent")
    intake_ = Intake(
        idempotency_key=key,
        channel=body.channel,
        customer_id=body.customer_id,
        tier=body.tier,
        subject=body.subject,
        description=body.description,
        context=body.snapshot(
            ip=request.client.host if request.client else None,
            user_agent=user_agent[:500] if user_agent else None,
        ),
        attachments=body.attachments,
        locale=body.locale,
        time_zone=body.time_zone,
    )
    # A key PostgreSQL knows opened its ticket before, perhaps so long ago that Temporal
    # no longer retains the workflow: starting it again would only make a run that ends
    # at once as a duplicate, and the caller would be told "created".
    earlier = await svc.call(svc.events.ticket_for_intake_key(key))
    started: OpenedTicket | None = None
    if earlier is None:
        started = await svc.call(svc.tickets.open(intake_))
        ticket_id, created = started.ticket_id, started.created
    elif await svc.call(is_erased(svc.pool, earlier)):
        raise ApiError(
            410, "ticket_erased", "this key's ticket was erased with its customer's data"
        )
    else:
        ticket_id, created = earlier, False
    response.status_code = 201 if created else 200
    try:
        if started is None:
            view = await svc.call(svc.tickets.view(ticket_id))
        else:
            # Read back, then settled to the quiet tickets' priority (also when this
            # request found it started by a concurrent one: settling twice changes nothing).
            found = await svc.tickets.read_back(started, svc.settings.temporal_timeout)
            if found is None:
                return _accepted(response, started)
            view = found
        return opened(view, created)
    except RPCError as error:
        if created or error.status is not RPCStatusCode.NOT_FOUND:
            raise
    row = await svc.call(svc.events.ticket(ticket_id))
    if row is None:
        raise not_found(ticket_id)
    return opened_from_read_model(row)


def _accepted(response: Response, started: OpenedTicket) -> TicketOpened:
    """Started, and Temporal keeps it, but the worker has not answered yet: a 503 here
    would have the caller resend exactly when the system is overloaded."""
    response.status_code = 202
    response.headers["Location"] = f"/v1/tickets/{started.ticket_id}"
    return TicketOpened(
        ticket_id=started.ticket_id,
        created=started.created,
        status=TicketStatus.NEW,
        classification=started.guess,
        tags=[started.tag],
        deadlines={},
    )


def _idempotency_key(header: str | None, body: str | None) -> str:
    header = header.strip() if header else None
    if header and body and header != body:
        raise ApiError(
            422, "invalid_request", "Idempotency-Key header and body idempotency_key differ"
        )
    key = header or body
    if not key:
        raise ApiError(
            422,
            "invalid_request",
            "an idempotency key is required: Idempotency-Key header or body idempotency_key",
        )
    return key
