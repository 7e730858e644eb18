"""`GET /v1/tickets`: the `tickets` read model in PostgreSQL, filtered and paged by cursor.

What needs attention first (the SLA due soonest, overdue before that, then priority), or
newest first. The cursor is the last row's sort key, so a page never repeats or skips a
row while new tickets arrive.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from activities.database import Pool
from api.errors import ApiError
from api.schemas import TicketPage, TicketSummary

# Every field is a column of `tickets`, but `erased`: an erasure pseudonymises the
# customer id (stores/erasure.py names pseudonyms `erased-…`).
_COLUMNS = tuple(name for name in TicketSummary.model_fields if name != "erased")
_SELECT = ", ".join(_COLUMNS) + ", customer_id LIKE 'erased-%' AS erased"


class Sort(StrEnum):
    ATTENTION = "attention"  # SLA due soonest first (none last), then E, A, B, C
    NEWEST = "newest"  # opened most recently first


# Must match the expressions of the `tickets_attention` index (migration 0002), or the
# planner sorts every row instead of walking the index.
_DUE = "COALESCE(due_at, 'infinity'::timestamptz)"
_RANK = "(CASE priority WHEN 'E' THEN 0 WHEN 'A' THEN 1 WHEN 'B' THEN 2 WHEN 'C' THEN 3 ELSE 4 END)"
_PRIORITY_RANK = {"E": 0, "A": 1, "B": 2, "C": 3}


@dataclass
class TicketFilter:
    status: list[str] = field(default_factory=list)
    priority: list[str] = field(default_factory=list)
    category: list[str] = field(default_factory=list)
    tier: list[str] = field(default_factory=list)
    topic: list[str] = field(default_factory=list)
    tag: list[str] = field(default_factory=list)
    channel: list[str] = field(default_factory=list)
    department: str | None = None
    assignee: str | None = None
    unassigned: bool | None = None
    breached: bool | None = None
    paused: bool | None = None
    opened_after: datetime | None = None
    opened_before: datetime | None = None
    # Not closed.
    open: bool | None = None
    # Past the first warning of an SLA still kept ("breaching soon").
    warned: bool | None = None
    # A promise broken and not yet met: the SLA, or the first reply.
    overdue: bool | None = None
    escalated: bool | None = None
    # Resolved, awaiting the customer's confirmation.
    resolved: bool | None = None
    customer_id: str | None = None


def encode_cursor(sort: Sort, item: TicketSummary) -> str:
    assert item.opened_at is not None  # filtered in the query
    key: list[Any] = [sort.value, item.opened_at.isoformat(), item.ticket_id]
    if sort is Sort.ATTENTION:
        key += [None if item.due_at is None else item.due_at.isoformat(), _rank(item.priority)]
    raw = json.dumps(key, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _rank(priority: str | None) -> int:
    return _PRIORITY_RANK.get(priority or "", 4)


def decode_cursor(sort: Sort, cursor: str) -> list[Any]:
    """The cursor's sort key, as query parameters: opened_at, ticket_id[, due_at, rank]."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
        if not isinstance(key, list) or key[0] != sort.value:
            raise ValueError(cursor)
        ticket_id = key[2]
        if not isinstance(ticket_id, str) or "\x00" in ticket_id or len(ticket_id) > 200:
            raise ValueError(ticket_id)
        values: list[Any] = [_aware(key[1]), ticket_id]
        if sort is Sort.ATTENTION:
            rank = key[4]
            if not isinstance(rank, int) or not 0 <= rank <= max(_PRIORITY_RANK.values()) + 1:
                raise ValueError(rank)
            values += [None if key[3] is None else _aware(key[3]), rank]
        elif len(key) != 3:
            raise ValueError(cursor)
    except (binascii.Error, ValueError, TypeError, IndexError, OverflowError, UnicodeDecodeError):
        raise ApiError(
            422, "invalid_request", f"cursor is not one this API handed out for sort={sort.value}"
        ) from None
    return values


def _aware(text: Any) -> datetime:
    """An instant PostgreSQL can hold, in UTC (a cursor may have been tampered with)."""
    instant = datetime.fromisoformat(str(text))
    if instant.tzinfo is None:
        raise ValueError(text)
    return instant.astimezone(UTC)


_OVERDUE = (
    "((due_at IS NOT NULL AND (sla_breached OR due_at <= now())) OR first_response_due_at <= now())"
)
_WARNED = "(sla_warned_at IS NOT NULL AND NOT sla_breached AND due_at > now())"
_FLAGS = {
    "open": ("status <> 'closed'", "status = 'closed'"),
    "warned": (_WARNED, f"NOT {_WARNED}"),
    "overdue": (_OVERDUE, f"NOT COALESCE({_OVERDUE}, false)"),
    "escalated": ("escalated", "NOT escalated"),
    "resolved": (
        "status = 'resolved_awaiting_confirmation'",
        "status <> 'resolved_awaiting_confirmation'",
    ),
}


def _where(filters: TicketFilter, sort: Sort, cursor: str | None) -> tuple[str, list[Any]]:
    args: list[Any] = []
    clauses = _clauses(filters, args)
    if cursor is not None:
        clauses.append(_after(sort, cursor, args))
    return " AND ".join(clauses), args


def _clauses(filters: TicketFilter, args: list[Any]) -> list[str]:
    """The filter's conditions, its values appended to `args` as query parameters."""
    clauses = ["opened_at IS NOT NULL"]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    for column in ("status", "priority", "category", "tier", "topic", "tag", "channel"):
        values = getattr(filters, column)
        if values:
            clauses.append(f"{column} = ANY({arg(values)}::text[])")
    if filters.department is not None:
        clauses.append(f"departments @> ARRAY[{arg(filters.department)}::text]")
    if filters.assignee is not None:
        clauses.append(f"assignee = {arg(filters.assignee)}")
    if filters.unassigned is not None:
        clauses.append("assignee IS NULL" if filters.unassigned else "assignee IS NOT NULL")
    if filters.breached is not None:
        clauses.append(f"sla_breached = {arg(filters.breached)}")
    if filters.paused is not None:
        clauses.append(
            "sla_paused_since IS NOT NULL" if filters.paused else "sla_paused_since IS NULL"
        )
    if filters.opened_after is not None:
        clauses.append(f"opened_at >= {arg(filters.opened_after)}")
    if filters.opened_before is not None:
        clauses.append(f"opened_at < {arg(filters.opened_before)}")
    if filters.customer_id is not None:
        clauses.append(f"customer_id = {arg(filters.customer_id)}")
    for name, (yes, no) in _FLAGS.items():
        flag = getattr(filters, name)
        if flag is not None:
            clauses.append(yes if flag else no)
    return clauses


def _after(sort: Sort, cursor: str, args: list[Any]) -> str:
    """The keyset condition: rows after the cursor's, in the sort's order."""

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    key = decode_cursor(sort, cursor)
    if sort is Sort.NEWEST:
        return f"(opened_at, ticket_id) < ({arg(key[0])}, {arg(key[1])})"
    opened_at, ticket_id, due_at, rank = (arg(value) for value in key)
    return (
        f"({_DUE}, {_RANK}, opened_at, ticket_id) > "
        f"(COALESCE({due_at}::timestamptz, 'infinity'::timestamptz), {rank}::int, "
        f"{opened_at}, {ticket_id})"
    )


_ORDER = {
    Sort.ATTENTION: f"{_DUE}, {_RANK}, opened_at, ticket_id",
    Sort.NEWEST: "opened_at DESC, ticket_id DESC",
}


async def list_tickets(
    pool: Pool, filters: TicketFilter, limit: int, cursor: str | None, sort: Sort = Sort.ATTENTION
) -> TicketPage:
    where, args = _where(filters, sort, cursor)
    args.append(limit + 1)
    rows = await pool.fetch(
        f"SELECT {_SELECT} FROM tickets WHERE {where} ORDER BY {_ORDER[sort]} LIMIT ${len(args)}",
        *args,
    )
    items = [TicketSummary.model_validate(dict(row)) for row in rows[:limit]]
    next_cursor = encode_cursor(sort, items[-1]) if len(rows) > limit else None
    return TicketPage(items=items, next_cursor=next_cursor)


async def count_views(
    pool: Pool, common: TicketFilter, views: dict[str, TicketFilter]
) -> dict[str, int]:
    """How many tickets each view holds within the common filter, in one scan."""
    args: list[Any] = []
    where = " AND ".join(_clauses(common, args))
    counts = ", ".join(
        f'count(*) FILTER (WHERE {" AND ".join(_clauses(view, args))}) AS "{name}"'
        for name, view in views.items()
    )
    row = await pool.fetchrow(f"SELECT {counts} FROM tickets WHERE {where}", *args)
    return {name: int(row[name]) if row is not None else 0 for name in views}
