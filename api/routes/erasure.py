"""`POST /v1/erasures`: a customer's right to erasure, carried out by an operator.

1. Refused (409) while any of the customer's tickets is still open: its next events would
   bring the words back. Close them first.
2. The workflows of closed tickets still in their feedback window are terminated, so
   nothing more is appended. No other workflow is touched.
3. PostgreSQL: event store, outbox, read model and intake keys, in one transaction
   (stores/erasure.py). Counts, durations, scores and categories stay.
4. The workflow histories are deleted from Temporal, every run of each (they hold the
   words too, sealed with the payload key). A later intake with one of the erased
   tickets' idempotency keys answers 410 instead of bringing the ticket back.

The customer id travels in the body, never in the path, so it stays out of access logs.
`ticketflow erase-customer <id>` calls this route.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from api.access import Caller, Rule
from api.deps import Svc, require
from api.errors import COMMON_RESPONSES, ApiError
from stores.erasure import Erasure, OpenTickets, erase_customer, tickets_of

erasures = APIRouter(tags=["erasure"], responses=COMMON_RESPONSES)


class ErasureRequest(BaseModel):
    customer_id: str = Field(min_length=1, max_length=128)


class ErasureReport(Erasure):
    workflows_terminated: int
    workflows_deleted: int


@erasures.post("/v1/erasures")
async def erase(
    body: ErasureRequest,
    svc: Svc,
    caller: Annotated[Caller, Depends(require(Rule.ERASE))],
) -> ErasureReport:
    """Erase a customer's personal data everywhere ticketflow keeps it. A retry is
    harmless: nothing is left under that customer id, and the answer names no ticket."""
    tickets = await svc.call(tickets_of(svc.pool, body.customer_id))
    if tickets.open:
        raise _open(tickets.open)
    terminated = 0
    # Only closed tickets (still in their feedback window): a ticket opened meanwhile is
    # refused below, under the erasure's lock, with its workflow untouched.
    for ticket_id in tickets.closed:
        terminated += await svc.call(svc.tickets.stop(ticket_id, "customer data erased"))
    try:
        erasure = await svc.call(
            erase_customer(svc.pool, body.customer_id, caller.name, datetime.now(UTC))
        )
    except OpenTickets as error:  # reopened in the meantime
        raise _open(error.ticket_ids) from None
    deleted = 0  # workflow runs
    for ticket_id in erasure.tickets:
        deleted += await svc.call(svc.tickets.forget(ticket_id))
    return ErasureReport(
        **erasure.model_dump(), workflows_terminated=terminated, workflows_deleted=deleted
    )


def _open(ticket_ids: list[str]) -> ApiError:
    return ApiError(
        409,
        "tickets_open",
        f"close the customer's open tickets first: {', '.join(ticket_ids)}",
    )
