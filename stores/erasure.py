"""Erasure of a customer (PIPL art. 47, GDPR art. 17): their personal data leaves
PostgreSQL, their tickets' counts and durations stay.

One transaction per customer:
- **Event store.** Every event of the customer's tickets keeps its type, time, actor and
  numbers; every text field that may hold personal data (`EventData.personal_fields`:
  all of them but those marked `NotPersonal`, with the reason) is cleared, and the
  customer id becomes a random pseudonym, the same on all of that customer's tickets so
  "tickets per customer" still counts. The append-only trigger lets
  exactly this through (migration 0008).
- **Outbox.** Messages keep their kind, channel and delivery times; their words, the
  customer id, the hand-offs' summaries and snapshots and the destinations' receipts are
  cleared. Rows not yet delivered are marked failed, never sent.
- **Read model.** The subject goes, the customer id becomes the pseudonym.
- **Intake keys.** A backend's idempotency key may embed a message id or an address: it
  is replaced by its SHA-256, so it can never match (or name) anything again.
- `erasures` records the pseudonym, the tickets, who asked and when, and never the customer
  id, not even hashed (a hash of a phone number is guessed back in seconds). Asking again
  finds nothing under that customer id and erases nothing.

The Temporal side is the caller's: it ends the workflows first and deletes their histories
after (api/routes/erasure.py), so no later event brings the words back.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from activities.outbox import CUSTOMER_MESSAGE_PREFIX
from workflows.events import PAYLOADS, EventData, EventType, upcast

if TYPE_CHECKING:
    from activities.database import Pool, PoolConnection

ERASED = "[erased]"


class OpenTickets(Exception):
    """The customer has tickets still being worked on: close them first."""

    def __init__(self, ticket_ids: list[str]) -> None:
        super().__init__(f"tickets still open: {', '.join(ticket_ids)}")
        self.ticket_ids = ticket_ids


class ErasureCounts(BaseModel):
    events: int = 0
    outbox_rows: int = 0
    undelivered_cancelled: int = 0
    intake_keys: int = 0


class Erasure(BaseModel):
    # None, with no tickets: nothing is kept under that customer id (erased before, or
    # never a customer).
    pseudonym: str | None
    tickets: list[str]
    requested_by: str
    erased_at: datetime
    counts: ErasureCounts


def erased_data(kind: str, data: dict[str, Any], pseudonym: str) -> dict[str, Any]:
    """A stored payload with its personal fields cleared: None where the model allows it,
    an empty list for lists, `[erased]` for required text; the customer id pseudonymised."""
    model: type[EventData] = PAYLOADS[EventType(kind)]
    model.model_validate(upcast(kind, data))  # a payload no model reads is not rewritten
    cleared = dict(data)
    for name in model.personal_fields():
        if name in cleared:
            cleared[name] = _cleared(model.model_fields[name])
    for name in model.pseudonymised_fields():
        if name in cleared:
            cleared[name] = pseudonym
    return cleared


def _cleared(field: FieldInfo) -> Any:
    if not field.is_required() and field.default is None:
        return None
    if get_origin(field.annotation) is list:
        return []
    return ERASED


async def customer_tickets(conn: PoolConnection, customer_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT ticket_id FROM ticket_events WHERE type = 'ticket_opened' "
        "AND data ->> 'customer_id' = $1 ORDER BY ticket_id",
        customer_id,
    )
    return [row["ticket_id"] for row in rows]


class CustomerTickets(BaseModel):
    open: list[str]
    closed: list[str]


async def tickets_of(pool: Pool, customer_id: str) -> CustomerTickets:
    """The customer's tickets by state: an open one would undo an erasure with its next
    events; a closed one may still take feedback, and its workflow may be ended."""
    async with pool.acquire() as conn:
        tickets = await customer_tickets(conn, customer_id)
        rows = await conn.fetch(
            "SELECT ticket_id, status = 'closed' AS closed FROM tickets "
            "WHERE ticket_id = ANY($1::text[]) ORDER BY ticket_id",
            tickets,
        )
    return CustomerTickets(
        open=[r["ticket_id"] for r in rows if not r["closed"]],
        closed=[r["ticket_id"] for r in rows if r["closed"]],
    )


async def is_erased(pool: Pool, ticket_id: str) -> bool:
    """Whether the ticket's customer was erased (its Temporal history may still answer for
    a while: the server deletes in the background)."""
    found: bool = await pool.fetchval(
        "SELECT EXISTS (SELECT FROM tickets WHERE ticket_id = $1 AND customer_id LIKE 'erased-%')",
        ticket_id,
    )
    return found


async def erase_customer(pool: Pool, customer_id: str, requested_by: str, now: datetime) -> Erasure:
    """Erase the customer's personal data from every table. Asking again finds nothing
    left under that customer id: an empty erasure, so a retry is harmless."""
    async with pool.acquire() as conn, conn.transaction():
        # Two requests for one customer take turns; the second finds nothing left.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", "erasure:" + customer_id)
        tickets = await customer_tickets(conn, customer_id)
        if not tickets:
            return Erasure(
                pseudonym=None,
                tickets=[],
                requested_by=requested_by,
                erased_at=now,
                counts=ErasureCounts(),
            )
        still_open = await conn.fetch(
            "SELECT ticket_id FROM tickets WHERE ticket_id = ANY($1::text[]) "
            "AND status <> 'closed' ORDER BY ticket_id",
            tickets,
        )
        if still_open:
            raise OpenTickets([row["ticket_id"] for row in still_open])
        pseudonym = "erased-" + uuid.uuid4().hex[:16]
        await conn.execute("SET LOCAL ticketflow.erasure = 'on'")
        counts = ErasureCounts(
            events=await _erase_events(conn, tickets, pseudonym),
            **await _erase_outbox(conn, tickets, pseudonym),
            intake_keys=await _erase_intake_keys(conn, tickets),
        )
        await conn.execute(
            "UPDATE tickets SET customer_id = $2, subject = NULL WHERE ticket_id = ANY($1::text[])",
            tickets,
            pseudonym,
        )
        await conn.execute(
            "INSERT INTO erasures (pseudonym, tickets, requested_by, erased_at, counts) "
            "VALUES ($1, $2, $3, $4, $5)",
            pseudonym,
            tickets,
            requested_by,
            now,
            counts.model_dump(),
        )
    return Erasure(
        pseudonym=pseudonym,
        tickets=tickets,
        requested_by=requested_by,
        erased_at=now,
        counts=counts,
    )


async def _erase_events(conn: PoolConnection, tickets: list[str], pseudonym: str) -> int:
    rows = await conn.fetch(
        "SELECT global_position, type, actor_id, actor_role, data FROM ticket_events "
        "WHERE ticket_id = ANY($1::text[])",
        tickets,
    )
    changed = []
    for row in rows:
        data = row["data"]
        cleared = erased_data(row["type"], data, pseudonym)
        # What the customer did names them as its actor.
        actor = pseudonym if row["actor_role"] == "customer" else row["actor_id"]
        if cleared != data or actor != row["actor_id"]:
            changed.append((row["global_position"], cleared, actor))
    await conn.executemany(
        "UPDATE ticket_events SET data = $2, actor_id = $3 WHERE global_position = $1", changed
    )
    return len(changed)


async def _erase_outbox(conn: PoolConnection, tickets: list[str], pseudonym: str) -> dict[str, int]:
    cancelled = await conn.fetchval(
        """
        WITH cancelled AS (
            UPDATE outbox SET failed_at = now(), last_error = 'erased before delivery'
            WHERE ticket_id = ANY($1::text[]) AND dispatched_at IS NULL AND failed_at IS NULL
            RETURNING 1
        ) SELECT count(*) FROM cancelled
        """,
        tickets,
    )
    # Customer messages keep their kind and times; hand-offs their recipients and tag.
    rows = await conn.fetchval(
        """
        WITH erased AS (
            UPDATE outbox SET
                payload = CASE WHEN kind LIKE $3 || '%'
                    THEN payload || jsonb_build_object('customer_id', $2::text,
                                                       'params', '{}'::jsonb, 'text', NULL)
                    ELSE payload || jsonb_build_object('summary', $4::text, 'data', '{}'::jsonb)
                END,
                rendered = CASE WHEN rendered IS NULL THEN NULL ELSE $4 END,
                receipt = CASE WHEN receipt IS NULL THEN NULL ELSE '{"erased": true}'::jsonb END,
                last_error = CASE WHEN last_error IS NULL THEN NULL
                    WHEN last_error = 'erased before delivery' THEN last_error ELSE $4 END
            WHERE ticket_id = ANY($1::text[])
            RETURNING 1
        ) SELECT count(*) FROM erased
        """,
        tickets,
        pseudonym,
        CUSTOMER_MESSAGE_PREFIX,
        ERASED,
    )
    return {"outbox_rows": rows, "undelivered_cancelled": cancelled}


async def _erase_intake_keys(conn: PoolConnection, tickets: list[str]) -> int:
    count: int = await conn.fetchval(
        """
        WITH erased AS (
            UPDATE intake_keys SET idempotency_key = 'erased:' || encode(sha256(convert_to(idempotency_key, 'UTF8')), 'hex')
            WHERE ticket_id = ANY($1::text[]) AND idempotency_key NOT LIKE 'erased:%'
            RETURNING 1
        ) SELECT count(*) FROM erased
        """,
        tickets,
    )
    return count
