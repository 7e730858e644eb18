"""The PostgreSQL event store: intake dedupe, event appends and the tickets read model.

Activities run at least once, so every write here is idempotent on a business key:
the idempotency key for intakes, (ticket_id, seq) for events, the dedupe key for outbox
rows, and the read model's `last_seq` checkpoint for the projection.

An append stores the events, their outbox rows and the ticket's read-model row in one
transaction. Usually that is one statement: the store keeps the row it wrote last for
each ticket it serves, projects the batch onto it in memory and writes it as a
compare-and-set on `last_seq`. Otherwise (the first append this worker sees, a retry,
another worker's row) it takes the ticket's lock, reads the row and catches it up from
the stored events: four round trips. (docs/benchmarks.md: 4,400-5,000 events/s the
locked way for every append, 7,300-8,300 with the one statement.)
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog
from temporalio import activity

from activities.database import encode_json
from activities.errors import bad_data
from activities.outbox import (
    CUSTOMER_MESSAGE_PREFIX,
    ROW_ARRAYS,
    Outbox,
    OutboxMessage,
    OutboxRow,
    insert_rows_sql,
    log_unroutable,
    row_arrays,
)
from activities.projection import COLUMNS, TicketRow, project_all
from workflows.activity_names import APPEND_EVENTS, CLAIM_INTAKE
from workflows.contracts import CustomerMessage, EventBatch, IntakeClaim, IntakeClaimResult
from workflows.events import DomainEvent, stored_data

if TYPE_CHECKING:
    from activities.database import Pool, PoolConnection

log = structlog.get_logger()

_EVENT_COLUMNS = "ticket_id, seq, type, occurred_at, actor_id, actor_role, data"

# Only the row's known columns: a column added by a later migration must not reach
# TicketRow (which forbids extras) before the code knows about it.
_SELECT_TICKET = f"SELECT {', '.join(COLUMNS)} FROM tickets WHERE ticket_id = $1"

# Appends of one ticket take turns (a retry racing the attempt it replaces, or batches
# sent out of order): the projection must read the row and the stored events as the
# previous append left them. Two-key form, so it cannot collide with the migration lock.
TICKET_LOCK_CLASS = 0x7466  # "tf"

# Parameters $1 (ticket id), $2..$7 (the events' column arrays) and $8.. (the outbox
# rows' arrays, see activities.outbox.row_arrays) are the same in both append statements.
# unnest turns the column arrays into rows; ORDER BY seq keeps global_position in seq order.
STORE_BATCH = f"""
    queued AS ({insert_rows_sql(8)}),
    inserted AS (
        INSERT INTO ticket_events ({_EVENT_COLUMNS})
        SELECT $1, e.seq, e.type, e.occurred_at, e.actor_id, e.actor_role, e.data::jsonb
        FROM unnest($2::int[], $3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::text[])
            AS e(seq, type, occurred_at, actor_id, actor_role, data)
        ORDER BY e.seq
        ON CONFLICT (ticket_id, seq) DO NOTHING
        RETURNING seq
    )
"""


def _upsert_ticket_sql(first_param: int, where: str, *, only_if: str = "true") -> str:
    """Write a read-model row from parameters $first_param.. (in COLUMNS order): inserted
    if `only_if` holds, updated if `where` holds too."""
    return f"""
        INSERT INTO tickets ({", ".join(COLUMNS)})
        SELECT {", ".join(f"${first_param + i}" for i in range(len(COLUMNS)))}
        WHERE {only_if}
        ON CONFLICT (ticket_id) DO UPDATE SET
            {", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c != "ticket_id")}
        WHERE {where}
    """


_ROW_PARAM = 8 + ROW_ARRAYS  # after the ticket id, the events' and the outbox rows' arrays

# The usual append, one statement and one round trip: the batch, and the read-model row
# this store projected in memory from the row it wrote last, as a compare-and-set: the
# stored row must still be at that row's last_seq, and no event may be stored past the
# batch (an earlier append that could not be projected). If not (another worker, a retry
# racing its attempt, a row never seen), `projected` is false and the append goes the
# locked way. (A batch racing one with *later* seqs could slip past the second check;
# the workflow never sends those at once, and the ticket's next append catches up.)
_EXPECTED_LAST_SEQ = f"${_ROW_PARAM + len(COLUMNS)}"
_BATCH_LAST_SEQ = f"${_ROW_PARAM + len(COLUMNS) + 1}"
_NOTHING_STORED_PAST_BATCH = (
    f"NOT EXISTS (SELECT FROM ticket_events WHERE ticket_id = $1 AND seq > {_BATCH_LAST_SEQ})"
)
_APPEND_ON_KNOWN_ROW = f"""
    WITH {STORE_BATCH},
    projected AS (
        {
    _upsert_ticket_sql(
        _ROW_PARAM,
        f"tickets.last_seq = {_EXPECTED_LAST_SEQ}",
        only_if=_NOTHING_STORED_PAST_BATCH,
    )
}
        RETURNING 1
    )
    SELECT ARRAY(SELECT seq FROM inserted) AS inserted, EXISTS(SELECT FROM projected) AS projected
"""

# The locked way: under the ticket's lock, store the batch and read what the projection
# needs. The sub-selects see the statement's snapshot, i.e. the store *before* this
# insert: `stored_max` is the highest seq an earlier append stored.
_INSERT_EVENTS = f"""
    WITH {STORE_BATCH}
    SELECT
        ARRAY(SELECT seq FROM inserted) AS inserted,
        (SELECT max(seq) FROM ticket_events WHERE ticket_id = $1) AS stored_max,
        (SELECT to_jsonb(t) FROM ({_SELECT_TICKET}) t) AS ticket
"""

# The WHERE never lets the row move backwards, whatever the caller did (the ticket lock
# already serialises appends).
_UPSERT_TICKET = _upsert_ticket_sql(1, "tickets.last_seq < EXCLUDED.last_seq")

_SELECT_EVENTS_AFTER = f"""
    SELECT {_EVENT_COLUMNS} FROM ticket_events
    WHERE ticket_id = $1 AND seq > $2
    ORDER BY seq
"""

_SELECT_MESSAGES = f"""
    SELECT event_seq, kind, channel_or_recipient, payload, rendered, created_at
    FROM outbox
    WHERE ticket_id = $1 AND kind LIKE '{CUSTOMER_MESSAGE_PREFIX}%'
    ORDER BY id
"""

# Only rows of transactions older than every transaction still running: a sequence
# value is taken before commit, so a reader that trusted global_position alone would
# step over a slow transaction's rows and never come back for them.
_READ_ALL = f"""
    SELECT global_position, {_EVENT_COLUMNS} FROM ticket_events
    WHERE global_position > $1
      AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY global_position
    LIMIT $2
"""


@dataclass(frozen=True)
class StoredEvent:
    global_position: int
    event: DomainEvent


class EventStore:
    def __init__(self, pool: Pool, outbox: Outbox | None = None, *, rows_kept: int = 5000) -> None:
        """`outbox` turns a batch's messages and hand-offs into rows; readers need none.

        The store remembers the read-model rows it wrote last for up to `rows_kept`
        tickets (about 1 KiB each), so that the next append of such a ticket projects
        in memory and goes in one statement.
        """
        self._pool = pool
        self._outbox = outbox
        self._rows: OrderedDict[str, TicketRow] = OrderedDict()
        self._rows_kept = rows_kept

    # ------------------------------------------------------------ activities

    @activity.defn(name=CLAIM_INTAKE)
    async def claim_intake(self, claim: IntakeClaim) -> IntakeClaimResult:
        """Claim the idempotency key for this run, for ever.

        A retry of the same run finds its own claim and is not a duplicate; any other run
        (a resent intake, or the same ticket id started again after Temporal forgot it)
        gets the ticket that holds the key.
        """
        logger = log.bind(ticket_id=claim.ticket_id)
        stored = await self._pool.fetchrow(
            """
            WITH claimed AS (
                INSERT INTO intake_keys (idempotency_key, ticket_id, run_id, channel, created_at)
                VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (idempotency_key) DO NOTHING
                RETURNING ticket_id, run_id
            )
            SELECT ticket_id, run_id FROM claimed
            UNION ALL
            SELECT ticket_id, run_id FROM intake_keys WHERE idempotency_key = $1
            LIMIT 1
            """,
            claim.idempotency_key,
            claim.ticket_id,
            claim.run_id,
            claim.channel.value,
            claim.opened_at,
        )
        if stored is None:
            # A concurrent claim committed after this statement's snapshot was taken: the
            # insert saw its row, the select could not. A fresh statement sees it.
            stored = await self._pool.fetchrow(
                "SELECT ticket_id, run_id FROM intake_keys WHERE idempotency_key = $1",
                claim.idempotency_key,
            )
            if stored is None:  # pragma: no cover - would mean a deleted claim
                raise RuntimeError("intake claim vanished; retrying")
        duplicate = stored["run_id"] != claim.run_id
        if duplicate:
            logger.info("duplicate intake", duplicate_of=stored["ticket_id"])
        return IntakeClaimResult(duplicate=duplicate, ticket_id=stored["ticket_id"])

    @activity.defn(name=APPEND_EVENTS)
    async def append_events(self, batch: EventBatch) -> int:
        """Store the batch's events and outbox rows and bring the ticket's read-model row
        up to date, atomically.

        Returns how many events were new; a retried batch returns 0 and changes nothing.
        """
        _check_batch(batch)
        rows = self._outbox_rows(batch)
        if not batch.events and not rows:
            return 0
        try:
            stored = await self._append_on_known_row(batch, rows)
            if stored is None or not stored.projected:
                inserted = await self._append_locked(batch, rows)
                stored = _Stored(inserted=(stored.inserted if stored else 0) + inserted)
        except (ValueError, asyncpg.DataError) as error:
            # Projection ValueErrors and PostgreSQL data errors (a NUL byte in a string,
            # an out-of-range number) fail the same way on every retry.
            raise bad_data(f"cannot store events of ticket {batch.ticket_id}: {error}") from error
        if stored.inserted:
            await tell_changed(self._pool, [batch.ticket_id], queued=bool(rows))
        return stored.inserted

    async def _append_on_known_row(
        self, batch: EventBatch, rows: list[OutboxRow]
    ) -> _Stored | None:
        """One statement, when the batch follows the row this store wrote last."""
        previous = self._rows.get(batch.ticket_id)
        last_seq = 0 if previous is None else previous.last_seq
        events = sorted(batch.events, key=lambda e: e.seq)
        if not events or not _follows(last_seq, events):
            return None
        row = project_all(previous, events)
        assert row is not None  # events is not empty
        record = await self._pool.fetchrow(
            _APPEND_ON_KNOWN_ROW,
            *batch_params(batch, rows),
            *_row_values(row),
            last_seq,
            events[-1].seq,
        )
        assert record is not None  # a SELECT without FROM always yields one row
        if record["projected"]:
            self._remember(row)
        return _Stored(inserted=len(record["inserted"]), projected=record["projected"])

    async def _append_locked(self, batch: EventBatch, rows: list[OutboxRow]) -> int:
        """Under the ticket's lock: store the batch, read the row and catch it up with
        every stored event it lacks. Serves first appends, retries and other workers'."""
        async with _ticket_transaction(self._pool, batch.ticket_id) as conn:
            appended = await _insert_events(conn, batch, rows)
            row = await _project(conn, batch, appended)
        if row is not None:
            self._remember(row)
        log.debug(
            "events appended under the ticket lock",
            ticket_id=batch.ticket_id,
            appended=len(appended.inserted),
            received=len(batch.events),
            projected_to=None if row is None else row.last_seq,
        )
        return len(appended.inserted)

    def _remember(self, row: TicketRow) -> None:
        self._rows[row.ticket_id] = row
        self._rows.move_to_end(row.ticket_id)
        while len(self._rows) > self._rows_kept:
            self._rows.popitem(last=False)

    def _outbox_rows(self, batch: EventBatch) -> list[OutboxRow]:
        if not batch.messages and not batch.handoffs:
            return []
        if self._outbox is None:
            raise RuntimeError(
                "this EventStore was built without an outbox; it cannot store effects"
            )
        rows = self._outbox.rows(batch.messages, batch.handoffs)
        log_unroutable(batch.ticket_id, rows)
        return rows

    # ------------------------------------------------------------ reads

    async def ticket(self, ticket_id: str) -> TicketRow | None:
        record = await self._pool.fetchrow(_SELECT_TICKET, ticket_id)
        return None if record is None else TicketRow.model_validate(dict(record))

    async def ticket_for_intake_key(self, idempotency_key: str) -> str | None:
        """The ticket an idempotency key opened, for ever (Temporal forgets closed ids),
        including one whose customer was erased (its key is kept as a SHA-256)."""
        ticket_id: str | None = await self._pool.fetchval(
            "SELECT ticket_id FROM intake_keys WHERE idempotency_key = $1 OR idempotency_key "
            "= 'erased:' || encode(sha256(convert_to($1, 'UTF8')), 'hex') LIMIT 1",
            idempotency_key,
        )
        return ticket_id

    async def events(self, ticket_id: str, after_seq: int = 0) -> list[DomainEvent]:
        records = await self._pool.fetch(_SELECT_EVENTS_AFTER, ticket_id, after_seq)
        return [_event(record) for record in records]

    async def thread(self, ticket_id: str) -> tuple[list[DomainEvent], list[OutboxMessage]]:
        """What `stores.thread.conversation` reads: the ticket's events, and the
        customer messages of its outbox in the order they were queued."""
        events = await self.events(ticket_id)
        records = await self._pool.fetch(_SELECT_MESSAGES, ticket_id)
        messages = [
            OutboxMessage(
                event_seq=r["event_seq"],
                kind=r["kind"].removeprefix(CUSTOMER_MESSAGE_PREFIX),
                channel=r["channel_or_recipient"],
                message=CustomerMessage.model_validate(r["payload"]),
                rendered=r["rendered"],
                created_at=r["created_at"],
            )
            for r in records
        ]
        return events, messages

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Events of every ticket in commit-safe global order, for catch-up consumers
        (metrics, exports) that checkpoint on global_position."""
        records = await self._pool.fetch(_READ_ALL, after_position, limit)
        return [StoredEvent(record["global_position"], _event(record)) for record in records]


async def tell_changed(pool: Pool, ticket_ids: list[str], *, queued: bool = False) -> None:
    """Tell whoever listens (the workspace's live pages) that these tickets changed, and
    the relays, if `queued`, that rows wait in the outbox.

    After the commit, in a statement of its own: a NOTIFY inside the append's transaction
    would hold PostgreSQL's notification lock through the commit's WAL flush and make
    concurrent appends commit one at a time (docs/benchmarks.md, "The agents' workspace").
    A notification lost to a crash right here costs a page one update, never a row."""
    try:
        await pool.execute(_TELL_CHANGED, TICKETS_CHANNEL, ticket_ids, OUTBOX_CHANNEL, queued)
    except (OSError, asyncpg.PostgresError) as error:
        log.warning(
            "could not tell listeners of a change", tickets=len(ticket_ids), error=repr(error)
        )


# Where a ticket's changes are told (LISTEN ticketflow_tickets), its id as the payload;
# and where relays hear that rows were queued (one notification per commit).
TICKETS_CHANNEL = "ticketflow_tickets"
OUTBOX_CHANNEL = "ticketflow_outbox"
_TELL_CHANGED = """
    SELECT pg_notify($1, t), CASE WHEN $4 THEN pg_notify($3, '') END
    FROM unnest($2::text[]) AS t
"""


@contextlib.asynccontextmanager
async def _ticket_transaction(pool: Pool, ticket_id: str) -> AsyncIterator[PoolConnection]:
    """A transaction holding the ticket's append lock, begun in a single round trip.

    BEGIN and the lock go as one simple-protocol query, which takes no parameters: the
    ticket id travels hex-encoded, so no id can break out of the statement.
    """
    async with pool.acquire() as conn:
        await conn.execute(
            "BEGIN; SELECT pg_advisory_xact_lock("
            f"{TICKET_LOCK_CLASS}, hashtext(convert_from(decode('{ticket_id.encode().hex()}',"
            " 'hex'), 'UTF8')))"
        )
        try:
            yield conn
        except BaseException:
            # On a broken or cancelled connection this fails too; asyncpg then rolls back
            # or drops the connection on release.
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")


def _check_batch(batch: EventBatch) -> None:
    owners = {
        *(e.ticket_id for e in batch.events),
        *(m.ticket_id for m in batch.messages),
        *(h.ticket_id for h in batch.handoffs),
    }
    strangers = sorted(owners - {batch.ticket_id})
    if strangers:
        raise bad_data(f"batch for ticket {batch.ticket_id} holds events of {strangers}")
    seqs = [e.seq for e in batch.events]
    if len(seqs) != len(set(seqs)):
        raise bad_data(f"batch for ticket {batch.ticket_id} repeats a seq: {sorted(seqs)}")


def batch_params(batch: EventBatch, rows: list[OutboxRow]) -> list[Any]:
    """The parameters $1.. of STORE_BATCH: the ticket, the events' and the outbox rows' arrays."""
    events = batch.events
    return [
        batch.ticket_id,
        [e.seq for e in events],
        [e.type.value for e in events],
        [e.occurred_at for e in events],
        [e.actor.id for e in events],
        [e.actor.role.value for e in events],
        [encode_json(stored_data(e)) for e in events],
        *row_arrays(rows),
    ]


@dataclass(frozen=True)
class _Stored:
    inserted: int  # events new to the store
    projected: bool = True  # the read-model row was brought up to date


@dataclass(frozen=True)
class _Appended:
    inserted: frozenset[int]
    stored_max: int  # highest seq stored before this append, 0 if none
    row: TicketRow | None  # the read-model row before this append


async def _insert_events(
    conn: PoolConnection, batch: EventBatch, rows: list[OutboxRow]
) -> _Appended:
    record = await conn.fetchrow(_INSERT_EVENTS, *batch_params(batch, rows))
    assert record is not None  # a SELECT without FROM always yields one row
    ticket = record["ticket"]
    return _Appended(
        inserted=frozenset(record["inserted"]),
        stored_max=record["stored_max"] or 0,
        row=None if ticket is None else TicketRow.model_validate(ticket),
    )


async def _project(
    conn: PoolConnection, batch: EventBatch, appended: _Appended
) -> TicketRow | None:
    """Apply the ticket's unprojected events, in seq order and without gaps; the row as
    it stands after (None: no row yet, nothing to project)."""
    row = appended.row
    last_seq = 0 if row is None else row.last_seq
    pending = sorted((e for e in batch.events if e.seq > last_seq), key=lambda e: e.seq)
    if not pending and appended.stored_max <= last_seq:
        return row
    if (
        appended.stored_max <= last_seq
        and _follows(last_seq, pending)
        and all(e.seq in appended.inserted for e in pending)
    ):
        events = pending  # the usual case: exactly the events just written, in order
    else:
        # A gap (an earlier batch not stored yet), or events an earlier append stored
        # but could not project for such a gap: project from the store, up to the first
        # gap. The append that fills the gap catches the row up.
        stored = await conn.fetch(_SELECT_EVENTS_AFTER, batch.ticket_id, last_seq)
        events = _contiguous(last_seq, [_event(r) for r in stored])
        if len(events) < len(stored):
            log.warning(
                "event sequence gap; projection waits for the missing events",
                ticket_id=batch.ticket_id,
                projected_up_to=last_seq + len(events),
                next_stored=stored[len(events)]["seq"],
            )
    new_row = project_all(row, events)
    if new_row is None or new_row.last_seq == last_seq:
        return row
    await conn.execute(_UPSERT_TICKET, *_row_values(new_row))
    return new_row


def _follows(last_seq: int, events: Sequence[DomainEvent]) -> bool:
    return [e.seq for e in events] == list(range(last_seq + 1, last_seq + 1 + len(events)))


def _contiguous(last_seq: int, events: list[DomainEvent]) -> list[DomainEvent]:
    run: list[DomainEvent] = []
    for event in events:
        if event.seq != last_seq + len(run) + 1:
            break
        run.append(event)
    return run


def _event(record: asyncpg.Record) -> DomainEvent:
    # DomainEvent upcasts payloads written by older code (workflows.events.upcast).
    return DomainEvent.model_validate(
        {
            "ticket_id": record["ticket_id"],
            "seq": record["seq"],
            "type": record["type"],
            "occurred_at": record["occurred_at"],
            "actor": {"id": record["actor_id"], "role": record["actor_role"]},
            "data": record["data"],
        }
    )


def _row_values(row: TicketRow) -> list[Any]:
    values = row.model_dump()
    values["departments"] = list(row.departments)
    return [values[column] for column in COLUMNS]
