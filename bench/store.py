"""Part 5: the PostgreSQL event store, written through and read from as the product does.

Appends go through `EventStore.append_events`, the activity the worker runs: the same
transaction (ticket lock, outbox rows, insert, projection of the `tickets` row). The batches are the
ones a real ticket of this run sent (decoded from its history), re-addressed to fresh
ticket ids, and each ticket's batches go in order, one at a time, as its workflow sends
them; many tickets append at once through the worker's pool size.

Reads (the API's ticket list, one ticket's events, counts) run over a store grown to N events (1,000,000 by default) by COPYing generated
tickets straight into `ticket_events` and `tickets`: the event sequences of this run's
real tickets (standard, reopened, 30-day), spread over half a year, with the read-model
rows to match. After the load the tables are vacuumed and analysed, as autovacuum would
do on its own in a live system.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence, Sized
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from activities.database import Pool, create_pool, encode_json
from activities.event_store import STORE_BATCH, EventStore, batch_params
from activities.indicators import GroupBy, service_health
from activities.outbox import Outbox
from activities.review_store import ReviewStore
from api.read_model import Sort, TicketFilter, list_tickets
from bench.throughput import percentile
from workflows.contracts import EventBatch
from workflows.policy import ServicePolicy
from workflows.vocabulary import Category, Channel, Priority, TicketStatus, Tier, Topic

# ---------------------------------------------------------------- appends


@dataclass
class AppendRate:
    concurrency: int
    tickets: int
    events: int
    batches: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    @property
    def mean_batch(self) -> float:
        return self.events / self.batches


def readdress(batches: Sequence[EventBatch], ticket_id: str) -> list[EventBatch]:
    """The batches as another ticket would send them: its id, its outbox dedupe keys."""

    def own(item: Any) -> Any:
        key = item.dedupe_key.replace(item.ticket_id, ticket_id, 1)
        return item.model_copy(update={"ticket_id": ticket_id, "dedupe_key": key})

    return [
        EventBatch(
            ticket_id=ticket_id,
            events=[event.model_copy(update={"ticket_id": ticket_id}) for event in batch.events],
            messages=[own(message) for message in batch.messages],
            handoffs=[own(handoff) for handoff in batch.handoffs],
        )
        for batch in batches
    ]


async def append_rate(
    pool: Pool,
    template: Sequence[EventBatch],
    tickets: int,
    concurrency: int,
    prefix: str,
    outbox: Outbox,
) -> AppendRate:
    store = EventStore(pool, outbox)
    return await _rate(template, tickets, concurrency, prefix, store.append_events)


# The floor: the same rows (events and outbox rows) as plain multi-row inserts, in the
# store's own statement, without the ticket lock and the projection of the `tickets` row.
# What an append costs above it is the read model (docs/benchmarks.md, "Appends").
_FLOOR = f"WITH {STORE_BATCH} SELECT count(*) FROM inserted"


async def floor_rate(
    pool: Pool,
    template: Sequence[EventBatch],
    tickets: int,
    concurrency: int,
    prefix: str,
    outbox: Outbox,
) -> AppendRate:
    async def insert(batch: EventBatch) -> object:
        rows = outbox.rows(batch.messages, batch.handoffs)
        return await pool.fetchval(_FLOOR, *batch_params(batch, rows))

    return await _rate(template, tickets, concurrency, prefix, insert)


async def _rate(
    template: Sequence[EventBatch],
    tickets: int,
    concurrency: int,
    prefix: str,
    write: Callable[[EventBatch], Awaitable[object]],
) -> AppendRate:
    """`tickets` copies of the template's batches, each ticket's in order, `concurrency`
    tickets at a time."""
    work = [readdress(template, f"{prefix}-{number}") for number in range(tickets)]
    queue = iter(work)

    async def writer() -> None:
        for ticket_batches in queue:
            for batch in ticket_batches:
                await write(batch)

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    events = sum(len(batch.events) for batch in template) * tickets
    return AppendRate(concurrency, tickets, events, len(template) * tickets, seconds)


# ---------------------------------------------------------------- bulk load


@dataclass(frozen=True)
class TemplateEvent:
    type: str
    actor_id: str
    actor_role: str
    data: str  # JSON text


@dataclass(frozen=True)
class Template:
    name: str
    events: tuple[TemplateEvent, ...]
    weight: float
    closed: bool


async def load_template(pool: Pool, ticket_id: str, name: str, weight: float) -> Template:
    rows = await pool.fetch(
        "SELECT type, actor_id, actor_role, data FROM ticket_events "
        "WHERE ticket_id = $1 ORDER BY seq",
        ticket_id,
    )
    events = tuple(
        TemplateEvent(row["type"], row["actor_id"], row["actor_role"], encode_json(row["data"]))
        for row in rows
    )
    if not events:
        raise ValueError(f"ticket {ticket_id} has no stored events to use as a template")
    return Template(name, events, weight, closed=any(e.type == "closed" for e in events))


@dataclass
class Loaded:
    events: int
    tickets: int
    seconds: float
    largest_ticket: str
    largest_events: int
    typical_ticket: str
    table_mib: float


_EVENT_COLUMNS = ("ticket_id", "seq", "type", "occurred_at", "actor_id", "actor_role", "data")
_TICKET_COLUMNS = (
    "ticket_id",
    "status",
    "priority",
    "category",
    "topic",
    "channel",
    "tier",
    "customer_id",
    "tag",
    "departments",
    "transfers",
    "sla_due_at",
    "sla_breached",
    "escalated",
    "reopen_count",
    "opened_at",
    "resolved_at",
    "closed_at",
    "close_reason",
    "due_at",
    "assignee",
    "last_seq",
    "updated_at",
)
_OPEN_STATUSES = (
    TicketStatus.NEW,
    TicketStatus.IN_PROGRESS,
    TicketStatus.WAITING_ON_DEPARTMENT,
    TicketStatus.WAITING_ON_PARTNER,
    TicketStatus.RESOLVED_AWAITING_CONFIRMATION,
)
_PRIORITIES = (Priority.E, Priority.A, Priority.B, Priority.C)
_PRIORITY_WEIGHTS = (2, 13, 35, 50)
_CHUNK = 100_000


def _generate(
    templates: Sequence[Template], total_events: int, prefix: str, seed: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], str, int, str]:
    rng = random.Random(seed)
    policy = ServicePolicy()
    departments = sorted(policy.departments)
    now = datetime.now(UTC)
    events: list[tuple[Any, ...]] = []
    tickets: list[tuple[Any, ...]] = []
    largest = ("", 0)
    typical = ""
    weights = [template.weight for template in templates]
    number = 0
    while len(events) < total_events:
        template = rng.choices(templates, weights)[0]
        closed = template.closed and rng.random() < 0.85
        length = len(template.events)
        if not closed:
            length = rng.randint(1, max(1, length - 1))
        length = min(length, total_events - len(events))
        ticket_id = f"{prefix}-{number:07d}"
        number += 1
        opened_at = now - timedelta(seconds=rng.uniform(0, 180 * 86_400))
        step = timedelta(minutes=rng.uniform(1, 240))
        for seq, event in enumerate(template.events[:length], start=1):
            events.append(
                (
                    ticket_id,
                    seq,
                    event.type,
                    opened_at + step * (seq - 1),
                    event.actor_id,
                    event.actor_role,
                    event.data,
                )
            )
        if length > largest[1]:
            largest = (ticket_id, length)
        if not typical and template.name == "standard" and length == len(template.events):
            typical = ticket_id
        priority = rng.choices(_PRIORITIES, _PRIORITY_WEIGHTS)[0]
        category = rng.choice(list(Category))
        topic = rng.choice(list(Topic))
        status = TicketStatus.CLOSED if closed else rng.choice(_OPEN_STATUSES)
        updated_at = opened_at + step * (length - 1)
        sla_due_at = opened_at + policy.sla[priority].within
        ticket_departments = rng.sample(departments, rng.choice((0, 0, 1, 1, 1, 2)))
        tickets.append(
            (
                ticket_id,
                status.value,
                priority.value,
                category.value,
                topic.value,
                rng.choice(list(Channel)).value,
                (Tier.VIP if rng.random() < 0.1 else Tier.STANDARD).value,
                f"cust-{rng.randrange(1_000_000):06d}",
                f"{category.value}-{topic.value}-{priority.value}",
                ticket_departments,
                len(ticket_departments),
                sla_due_at,
                updated_at > sla_due_at and rng.random() < 0.5,
                rng.random() < 0.1,
                1 if template.name == "reopened" and closed else 0,
                opened_at,
                updated_at if closed else None,
                updated_at if closed else None,
                "customer_confirmed" if closed else None,
                # Open tickets keep their SLA instant until a milestone meets it.
                None if closed or rng.random() < 0.3 else sla_due_at,
                None if rng.random() < 0.2 else f"agent-{rng.randrange(200)}",
                length,
                updated_at,
            )
        )
    return events, tickets, largest[0], largest[1], typical or tickets[0][0]


async def bulk_load(
    url: str, templates: Sequence[Template], total_events: int, prefix: str, seed: int = 4
) -> Loaded:
    """COPY `total_events` generated events (and their tickets) into the store."""
    started = time.perf_counter()
    events, tickets, largest, largest_events, typical = await asyncio.to_thread(
        _generate, templates, total_events, prefix, seed
    )
    # A plain connection: asyncpg's own jsonb codec takes the JSON text as it is.
    conn = await asyncpg.connect(url)
    try:
        for offset in range(0, len(events), _CHUNK):
            await conn.copy_records_to_table(
                "ticket_events", records=events[offset : offset + _CHUNK], columns=_EVENT_COLUMNS
            )
        await conn.copy_records_to_table("tickets", records=tickets, columns=_TICKET_COLUMNS)
        seconds = time.perf_counter() - started
        await conn.execute("VACUUM ANALYZE ticket_events")
        await conn.execute("VACUUM ANALYZE tickets")
        size = await conn.fetchval("SELECT pg_total_relation_size('ticket_events')")
    finally:
        await conn.close()
    return Loaded(
        events=len(events),
        tickets=len(tickets),
        seconds=seconds,
        largest_ticket=largest,
        largest_events=largest_events,
        typical_ticket=typical,
        table_mib=size / 2**20,
    )


# ---------------------------------------------------------------- reads


@dataclass
class QueryTime:
    name: str
    rows: int
    first_ms: float
    p50_ms: float
    p95_ms: float


_OPEN = [status.value for status in _OPEN_STATUSES]
# The ticket list is the API's own read path (`GET /v1/tickets`): api.read_model.
LIST_FILTERS: tuple[tuple[str, TicketFilter, Sort], ...] = (
    ("list: attention first 50, no filter", TicketFilter(), Sort.ATTENTION),
    (
        "list: open, unassigned, attention first 50",
        TicketFilter(status=_OPEN, unassigned=True),
        Sort.ATTENTION,
    ),
    (
        "list: one agent's open tickets, attention first 50",
        TicketFilter(status=_OPEN, assignee="agent-7"),
        Sort.ATTENTION,
    ),
    ("list: newest 50, no filter", TicketFilter(), Sort.NEWEST),
    (
        "list: status + priority, newest 50",
        TicketFilter(status=["waiting_on_department"], priority=["A"]),
        Sort.NEWEST,
    ),
    ("list: category, newest 50", TicketFilter(category=["technical_fault"]), Sort.NEWEST),
    (
        "list: open at a department, newest 50",
        TicketFilter(department="finance", status=_OPEN),
        Sort.NEWEST,
    ),
    (
        "list: open and SLA breached, newest 50",
        TicketFilter(status=_OPEN, breached=True),
        Sort.NEWEST,
    ),
    ("list: VIP, E priority, newest 50", TicketFilter(tier=["vip"], priority=["E"]), Sort.NEWEST),
)
# No API reads these yet; they are what a dashboard's counters would run.
COUNT_QUERIES: tuple[tuple[str, str], ...] = (
    ("count by status", "SELECT status, count(*) FROM tickets GROUP BY status"),
    ("count by priority", "SELECT priority, count(*) FROM tickets GROUP BY priority"),
    ("count by category", "SELECT category, count(*) FROM tickets GROUP BY category"),
    (
        "count open by priority and category",
        "SELECT priority, category, count(*) FROM tickets WHERE status <> 'closed' "
        "GROUP BY priority, category",
    ),
)


async def _time(name: str, run: Callable[[], Awaitable[Sized]], repeats: int) -> QueryTime:
    samples: list[float] = []
    rows = 0
    for _ in range(repeats):
        started = time.perf_counter()
        result = await run()
        samples.append(time.perf_counter() - started)
        rows = len(result)
    return QueryTime(
        name=name,
        rows=rows,
        first_ms=samples[0] * 1000,
        p50_ms=percentile(samples, 50) * 1000,
        p95_ms=percentile(samples, 95) * 1000,
    )


async def query_times(url: str, loaded: Loaded, repeats: int) -> list[QueryTime]:
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        store = EventStore(pool)
        times: list[QueryTime] = []
        for name, filters, sort in LIST_FILTERS:

            async def page(filters: TicketFilter = filters, sort: Sort = sort) -> list[Any]:
                return list((await list_tickets(pool, filters, 50, None, sort)).items)

            times.append(await _time(name, page, repeats))
        for sort in Sort:
            first = await list_tickets(pool, TicketFilter(status=_OPEN), 50, None, sort)

            async def next_page(
                sort: Sort = sort, cursor: str | None = first.next_cursor
            ) -> list[Any]:
                page = await list_tickets(pool, TicketFilter(status=_OPEN), 50, cursor, sort)
                return list(page.items)

            times.append(
                await _time(f"list: open, {sort.value}, second page (cursor)", next_page, repeats)
            )
        for name, sql in COUNT_QUERIES:

            async def count(sql: str = sql) -> list[Any]:
                return list(await pool.fetch(sql))

            times.append(await _time(name, count, repeats))
        # SPEC §5's indicators, as GET /v1/metrics computes them, for the last 30 days.
        end = datetime.now(UTC)
        for group_by in (None, GroupBy.CATEGORY):

            async def health(group_by: GroupBy | None = group_by) -> list[Any]:
                found = await service_health(
                    pool, ServicePolicy(), end - timedelta(days=30), end, group_by
                )
                return found.groups

            label = "all" if group_by is None else f"by {group_by.value}"
            times.append(await _time(f"indicators: last 30 days, {label}", health, repeats))

        # The weekly review's candidates (issue 11): the last 7 days, every stratum.
        async def review_candidates() -> list[Any]:
            found = await ReviewStore(pool, ServicePolicy()).candidates(
                end - timedelta(days=7), end, ServicePolicy()
            )
            return list(found.by_reason.values())

        times.append(
            await _time("weekly review: candidates of the last 7 days", review_candidates, repeats)
        )
        for label, ticket_id in (
            (f"one ticket's events ({loaded.largest_events}, largest)", loaded.largest_ticket),
            ("one ticket's events (standard lifecycle)", loaded.typical_ticket),
        ):

            async def history(ticket_id: str = ticket_id) -> list[Any]:
                return list(await store.events(ticket_id))

            times.append(await _time(label, history, repeats))
        return times
    finally:
        await pool.close()


# ---------------------------------------------------------------- bytes per ticket

# A heap tuple's header (23 B, aligned to 24) and its line pointer (4 B), beyond the
# row's own data that pg_column_size reports.
_ROW_OVERHEAD = 28
_TICKET_TABLES = ("ticket_events", "outbox", "tickets")


@dataclass(frozen=True)
class TicketBytes:
    """What one ticket holds in PostgreSQL: its rows in each table, and their share of
    each table's indexes (the table's index bytes per heap byte, applied to its rows)."""

    rows: dict[str, int]
    heap: dict[str, int]
    indexes: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.heap.values()) + sum(self.indexes.values())


async def ticket_bytes(pool: Pool, ticket_id: str) -> TicketBytes:
    rows, heap, indexes = {}, {}, {}
    for table in _TICKET_TABLES:
        record = await pool.fetchrow(
            f"SELECT count(*) AS n, coalesce(sum(pg_column_size(t.*)), 0) AS bytes"
            f" FROM {table} t WHERE ticket_id = $1",
            ticket_id,
        )
        assert record is not None
        sizes = await pool.fetchrow(
            "SELECT pg_relation_size($1::regclass) AS heap, pg_indexes_size($1::regclass) AS idx",
            table,
        )
        assert sizes is not None
        rows[table] = record["n"]
        heap[table] = record["bytes"] + _ROW_OVERHEAD * record["n"]
        ratio = sizes["idx"] / sizes["heap"] if sizes["heap"] else 0.0
        indexes[table] = round(heap[table] * ratio)
    return TicketBytes(rows, heap, indexes)
