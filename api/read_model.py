"""`GET /v1/tickets`: the `tickets` read model in PostgreSQL, filtered and paged by cursor.

Newest first, ordered by (opened_at, ticket_id); the cursor is the last row's pair, so a
page never repeats or skips a row while new tickets arrive.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from activities.database import Pool
from api.errors import ApiError
from api.schemas import TicketPage, TicketSummary

_COLUMNS = tuple(TicketSummary.model_fields)


@dataclass
class TicketFilter:
    status: list[str] = field(default_factory=list)
    priority: list[str] = field(default_factory=list)
    category: list[str] = field(default_factory=list)
    tier: list[str] = field(default_factory=list)
    department: str | None = None
    breached: bool | None = None
    opened_after: datetime | None = None
    opened_before: datetime | None = None


def encode_cursor(opened_at: datetime, ticket_id: str) -> str:
    raw = json.dumps([opened_at.isoformat(), ticket_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        opened_at, ticket_id = json.loads(raw)
        instant = datetime.fromisoformat(opened_at)
        if instant.tzinfo is None or not isinstance(ticket_id, str):
            raise ValueError(cursor)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise ApiError(422, "invalid_request", "cursor is not one this API handed out") from None
    return instant, ticket_id


def _where(filters: TicketFilter, cursor: str | None) -> tuple[str, list[Any]]:
    clauses = ["opened_at IS NOT NULL"]
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    for column in ("status", "priority", "category", "tier"):
        values = getattr(filters, column)
        if values:
            clauses.append(f"{column} = ANY({arg(values)}::text[])")
    if filters.department is not None:
        clauses.append(f"departments @> ARRAY[{arg(filters.department)}::text]")
    if filters.breached is not None:
        clauses.append(f"sla_breached = {arg(filters.breached)}")
    if filters.opened_after is not None:
        clauses.append(f"opened_at >= {arg(filters.opened_after)}")
    if filters.opened_before is not None:
        clauses.append(f"opened_at < {arg(filters.opened_before)}")
    if cursor is not None:
        opened_at, ticket_id = decode_cursor(cursor)
        clauses.append(f"(opened_at, ticket_id) < ({arg(opened_at)}, {arg(ticket_id)})")
    return " AND ".join(clauses), args


async def list_tickets(
    pool: Pool, filters: TicketFilter, limit: int, cursor: str | None
) -> TicketPage:
    where, args = _where(filters, cursor)
    args.append(limit + 1)
    rows = await pool.fetch(
        f"SELECT {', '.join(_COLUMNS)} FROM tickets WHERE {where} "
        f"ORDER BY opened_at DESC, ticket_id DESC LIMIT ${len(args)}",
        *args,
    )
    items = [TicketSummary.model_validate(dict(row)) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        assert last.opened_at is not None  # filtered above
        next_cursor = encode_cursor(last.opened_at, last.ticket_id)
    return TicketPage(items=items, next_cursor=next_cursor)
