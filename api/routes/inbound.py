"""What customers and partners send to a ticket: the customer's replies from their
channel, and partners' signed callbacks on an engagement."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request

from activities.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER
from api.access import Caller, Rule
from api.deps import Svc, TicketIdPath, known, require
from api.errors import TICKET_RESPONSES, ApiError, Problem
from api.schemas import Accepted, CustomerReplyRequest, PartnerCallbackRequest
from api.signatures import verify
from workflows.contracts import CustomerReply, PartnerCallback
from workflows.vocabulary import TicketStatus

MAX_CALLBACK_BYTES = 64 * 1024

inbound = APIRouter(tags=["customers and partners"], responses=TICKET_RESPONSES)


@inbound.post("/v1/tickets/{ticket_id}/customer-replies", status_code=202)
async def customer_reply(
    ticket_id: TicketIdPath,
    body: CustomerReplyRequest,
    svc: Svc,
    caller: Annotated[Caller, Depends(require(Rule.CUSTOMER_REPLY))],
) -> Accepted:
    """What the customer answered on their channel: a message, solved / not solved (which
    reopens), CSAT 1-5 or NPS 0-10. Accepted in order; a resent reply_id counts once.
    A closed ticket still takes replies during its feedback window (the ratings it asked
    for; anything else is kept without reopening); after it, 409 ticket_closed."""
    reply = CustomerReply.model_validate(body.model_dump())
    await svc.call(svc.tickets.customer_reply(known(ticket_id), reply))
    return Accepted(ticket_id=ticket_id)


_CALLBACK_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": PartnerCallbackRequest.model_json_schema()}},
    }
}


@inbound.post(
    "/v1/partners/{partner}/callbacks",
    status_code=202,
    openapi_extra=_CALLBACK_BODY,
    responses={413: {"model": Problem, "description": "body over 64 KiB"}},
)
async def partner_callback(
    partner: Annotated[str, Path(max_length=64)],
    request: Request,
    svc: Svc,
    caller: Annotated[Caller, Depends(require(Rule.PARTNER_CALLBACK))],
    timestamp: Annotated[str | None, Header(alias=TIMESTAMP_HEADER, max_length=32)] = None,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER, max_length=128)] = None,
) -> Accepted:
    """A partner's answer on an engagement. Signed: `X-Ticketflow-Signature: sha256=` +
    hex HMAC-SHA256 of `<X-Ticketflow-Timestamp>.<raw body>` with the partner's secret;
    older than 5 minutes or seen before is refused. A partner key calls back only as
    itself, and only on tickets that engaged it."""
    if caller.scope != partner:
        raise ApiError(403, "forbidden", f"role {caller.role} may call back only as {caller.scope}")
    secret = svc.partner_secrets.get(partner)
    if secret is None:
        raise ApiError(403, "forbidden", f"no signing secret is configured for {partner}")
    raw = await request.body()
    if len(raw) > MAX_CALLBACK_BYTES:
        raise ApiError(413, "too_large", "callback bodies are limited to 64 KiB")
    digest = verify(secret, timestamp, signature, raw, svc.settings.signature_tolerance)
    body = PartnerCallbackRequest.model_validate_json(raw)
    ticket_id = known(body.ticket_id)
    # A refusal below releases the signature again: only a delivered callback uses it up.
    async with svc.signatures.claim(partner, digest):
        state = await svc.call(svc.tickets.state(ticket_id))
        if state.status is TicketStatus.CLOSED:
            raise ApiError(409, "ticket_closed", "the ticket is closed; the answer was not taken")
        engagement = state.partners.get(partner)
        if engagement is None:
            raise ApiError(403, "forbidden", f"{partner} holds no engagement on this ticket")
        if engagement.answered_at is not None:
            raise ApiError(409, "already_answered", f"{partner} already answered on this ticket")
        callback = PartnerCallback(
            callback_id=body.callback_id, partner=partner, answer=body.answer, final=body.final
        )
        await svc.call(svc.tickets.partner_callback(ticket_id, callback))
    return Accepted(ticket_id=ticket_id)
