"""EventStore against a real PostgreSQL: idempotent appends, projection, intake claims."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.database import Pool, create_pool
from activities.event_store import TICKET_LOCK_CLASS, EventStore
from activities.outbox import Outbox
from activities.projection import project_all
from tests.activities.factories import MINIMAL, T0, batch, event, lifecycle, new_ticket_id
from workflows.contracts import EventBatch, Handoff, HandoffKind, IntakeClaim
from workflows.events import (
    PAYLOADS,
    CustomerReplied,
    EventType,
    StatusChanged,
    TicketOpened,
    stored_data,
)
from workflows.policy import ServicePolicy
from workflows.primitives import Actor
from workflows.vocabulary import Channel, Priority, Role

POLICY = ServicePolicy()


@pytest.fixture
def store(pg_pool: Pool) -> EventStore:
    return EventStore(pg_pool)


async def stored_seqs(pool: Pool, ticket_id: str) -> list[int]:
    rows = await pool.fetch(
        "SELECT seq FROM ticket_events WHERE ticket_id = $1 ORDER BY global_position", ticket_id
    )
    return [row["seq"] for row in rows]


def assert_bad_data(error: ApplicationError) -> None:
    assert error.type == "BadData"
    assert error.non_retryable


# ---------------------------------------------------------------- appends


async def test_same_batch_twice_is_stored_once(store: EventStore, pg_pool: Pool) -> None:
    ticket_id = new_ticket_id()
    events = lifecycle(ticket_id)[:5]

    assert await store.append_events(batch(events)) == 5
    assert await store.append_events(batch(events)) == 0

    assert await stored_seqs(pg_pool, ticket_id) == [1, 2, 3, 4, 5]
    assert await store.events(ticket_id) == events
    row = await store.ticket(ticket_id)
    assert row is not None and row.last_seq == 5


async def test_partially_overlapping_batches(store: EventStore, pg_pool: Pool) -> None:
    ticket_id = new_ticket_id()
    events = lifecycle(ticket_id)

    assert await store.append_events(batch(events[0:3])) == 3
    assert await store.append_events(batch(events[1:6])) == 3
    assert await store.append_events(batch(events[4:])) == len(events) - 6

    assert await stored_seqs(pg_pool, ticket_id) == list(range(1, len(events) + 1))


async def test_read_model_matches_the_pure_projection(store: EventStore) -> None:
    ticket_id = new_ticket_id()
    events = lifecycle(ticket_id)
    for start in range(0, len(events), 4):
        await store.append_events(batch(events[start : start + 4]))

    row = await store.ticket(ticket_id)
    assert row == project_all(None, events)
    assert row is not None
    assert (row.status, row.priority, row.departments, row.csat) == (
        "closed",
        "E",
        ("tech", "operations"),
        4,
    )


async def test_events_round_trip_with_their_data(store: EventStore) -> None:
    ticket_id = new_ticket_id()
    opened = lifecycle(ticket_id)[0]
    await store.append_events(batch([opened]))
    [back] = await store.events(ticket_id)
    assert back == opened
    assert isinstance(back.data, TicketOpened)
    assert back.data.tag == "故障-支付-A級"


async def test_out_of_order_batches_project_once_the_gap_is_filled(store: EventStore) -> None:
    ticket_id = new_ticket_id()
    events = lifecycle(ticket_id)[:6]

    assert await store.append_events(batch(events[3:])) == 3
    # Stored but not projected: seq 1-3 are missing, and order matters to the fold.
    assert await store.ticket(ticket_id) is None

    assert await store.append_events(batch(events[:3])) == 3
    assert await store.ticket(ticket_id) == project_all(None, events)


async def test_concurrent_retries_store_each_event_once(store: EventStore, pg_pool: Pool) -> None:
    ticket_id = new_ticket_id()
    events = lifecycle(ticket_id)

    counts = await asyncio.gather(*(store.append_events(batch(events)) for _ in range(5)))

    assert sum(counts) == len(events)
    assert await stored_seqs(pg_pool, ticket_id) == list(range(1, len(events) + 1))
    assert await store.ticket(ticket_id) == project_all(None, events)


async def test_empty_batch_appends_nothing(store: EventStore) -> None:
    assert await store.append_events(EventBatch(ticket_id=new_ticket_id(), events=[])) == 0


async def test_event_of_another_ticket_is_bad_data(store: EventStore, pg_pool: Pool) -> None:
    ticket_id = new_ticket_id()
    stranger = event(new_ticket_id(), 2, EventType.ASSIGNED, {"agent_id": "a"})
    mixed = EventBatch(ticket_id=ticket_id, events=[lifecycle(ticket_id)[0], stranger])

    with pytest.raises(ApplicationError) as raised:
        await store.append_events(mixed)

    assert_bad_data(raised.value)
    assert await stored_seqs(pg_pool, ticket_id) == []


async def test_repeated_seq_in_a_batch_is_bad_data(store: EventStore) -> None:
    ticket_id = new_ticket_id()
    first = event(ticket_id, 1, EventType.TICKET_OPENED)
    again = event(ticket_id, 1, EventType.ASSIGNED, {"agent_id": "a"})
    with pytest.raises(ApplicationError) as raised:
        await store.append_events(batch([first, again]))
    assert_bad_data(raised.value)


def test_a_value_of_the_wrong_shape_never_becomes_an_event() -> None:
    with pytest.raises(ValidationError, match=r"csat_recorded\.score"):
        event(new_ticket_id(), 2, EventType.CSAT_RECORDED, {"score": "excellent"})


async def test_unstorable_value_is_bad_data_and_rolls_back(
    store: EventStore, pg_pool: Pool
) -> None:
    ticket_id = new_ticket_id()
    # Contracts refuse a NUL in an id; a payload from an older version may still hold one.
    actor = Actor.model_construct(id="agent\x00x", role=Role.AGENT)
    events = [
        event(ticket_id, 1, EventType.TICKET_OPENED),
        event(ticket_id, 2, EventType.ASSIGNED, actor=actor),
    ]
    with pytest.raises(ApplicationError) as raised:
        await store.append_events(batch(events))
    assert_bad_data(raised.value)
    # Events and read model commit together or not at all.
    assert await stored_seqs(pg_pool, ticket_id) == []


async def test_text_postgresql_cannot_store_is_bad_data(store: EventStore) -> None:
    ticket_id = new_ticket_id()
    # Contracts refuse a NUL in an id; a payload from an older version may still hold one.
    actor = Actor.model_construct(id="agent\x00x", role=Role.AGENT)
    nul = event(ticket_id, 1, EventType.ASSIGNED, actor=actor)
    with pytest.raises(ApplicationError) as raised:
        await store.append_events(batch([nul]))
    assert_bad_data(raised.value)


async def test_events_are_append_only(store: EventStore, pg_pool: Pool) -> None:
    ticket_id = new_ticket_id()
    await store.append_events(batch(lifecycle(ticket_id)[:2]))

    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await pg_pool.execute("UPDATE ticket_events SET type = 'x' WHERE ticket_id = $1", ticket_id)
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await pg_pool.execute("DELETE FROM ticket_events WHERE ticket_id = $1", ticket_id)
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await pg_pool.execute("TRUNCATE ticket_events")
    assert await stored_seqs(pg_pool, ticket_id) == [1, 2]


async def test_runs_as_a_temporal_activity(store: EventStore) -> None:
    ticket_id = new_ticket_id()
    events = lifecycle(ticket_id)[:3]
    env = ActivityEnvironment()
    assert await env.run(store.append_events, batch(events)) == 3
    assert await env.run(store.append_events, batch(events)) == 0


# ---------------------------------------------------------------- catch-up reads


async def test_read_all_waits_for_transactions_still_open(store: EventStore, pg_pool: Pool) -> None:
    checkpoint = await pg_pool.fetchval(
        "SELECT coalesce(max(global_position), 0) FROM ticket_events"
    )
    slow_ticket, fast_ticket = new_ticket_id(), new_ticket_id()

    async with pg_pool.acquire() as conn:
        slow = conn.transaction()
        await slow.start()
        try:
            # Takes its position first but commits last.
            await conn.execute(
                "INSERT INTO ticket_events"
                " (ticket_id, seq, type, occurred_at, actor_id, actor_role, data)"
                " VALUES ($1, 1, 'ticket_opened', $2, 'ticketflow', 'system', $3)",
                slow_ticket,
                T0,
                stored_data(event(slow_ticket, 1, EventType.TICKET_OPENED)),
            )
            await store.append_events(batch([event(fast_ticket, 1, EventType.TICKET_OPENED)]))

            # A reader that trusted positions would take fast_ticket's event now and
            # checkpoint past slow_ticket's for ever.
            seen = await store.read_all(checkpoint)
            assert [
                s.event.ticket_id for s in seen if s.event.ticket_id in (slow_ticket, fast_ticket)
            ] == []
        finally:
            await slow.commit()

    seen = [
        s
        for s in await store.read_all(checkpoint)
        if s.event.ticket_id in (slow_ticket, fast_ticket)
    ]
    assert [s.event.ticket_id for s in seen] == [slow_ticket, fast_ticket]
    assert seen[0].global_position < seen[1].global_position


# ---------------------------------------------------------------- intake claims


def claim(key: str, *, ticket_id: str | None = None, run_id: str | None = None) -> IntakeClaim:
    return IntakeClaim(
        ticket_id=ticket_id or new_ticket_id(),
        idempotency_key=key,
        run_id=run_id or str(uuid.uuid4()),
        channel=Channel.APP_CHAT,
        opened_at=T0,
    )


async def test_first_claim_wins_and_retries_of_its_run_are_not_duplicates(
    store: EventStore,
) -> None:
    first = claim(f"key-{uuid.uuid4()}")

    result = await store.claim_intake(first)
    assert (result.duplicate, result.ticket_id) == (False, first.ticket_id)

    retry = await store.claim_intake(first)
    assert (retry.duplicate, retry.ticket_id) == (False, first.ticket_id)


async def test_another_run_with_the_same_key_is_a_duplicate(store: EventStore) -> None:
    key = f"key-{uuid.uuid4()}"
    first = claim(key)
    await store.claim_intake(first)

    resent = await store.claim_intake(claim(key))
    assert (resent.duplicate, resent.ticket_id) == (True, first.ticket_id)

    # Same ticket id started again after Temporal forgot it: a new run, still a duplicate.
    restarted = await store.claim_intake(claim(key, ticket_id=first.ticket_id))
    assert (restarted.duplicate, restarted.ticket_id) == (True, first.ticket_id)


async def test_concurrent_claims_elect_exactly_one_ticket(store: EventStore) -> None:
    key = f"key-{uuid.uuid4()}"
    claims = [claim(key) for _ in range(8)]

    results = await asyncio.gather(*(store.claim_intake(c) for c in claims))

    winners = [c for c, r in zip(claims, results, strict=True) if not r.duplicate]
    assert len(winners) == 1
    assert {r.ticket_id for r in results} == {winners[0].ticket_id}


async def test_claim_runs_as_a_temporal_activity(store: EventStore) -> None:
    first = claim(f"key-{uuid.uuid4()}")
    result = await ActivityEnvironment().run(store.claim_intake, first)
    assert not result.duplicate


# ---------------------------------------------------------------- throughput


def work_order(ticket_id: str, seq: int) -> Handoff:
    return Handoff(
        ticket_id=ticket_id,
        dedupe_key=f"{ticket_id}:{seq}:work_order",
        kind=HandoffKind.WORK_ORDER,
        recipients=["tech", "operations"],
        summary="s",
        tag="t",
        priority=Priority.E,
    )


async def test_round_trips_of_an_append(database_url: str, pg_pool: Pool) -> None:
    """A ticket this store wrote last: one statement (events, outbox rows and the row
    projected in memory). A ticket it has not seen: BEGIN with the lock; the insert;
    the upsert; COMMIT. Then, outside the transaction, the notification of the change
    (the workspace's live pages). A guard against an accidental extra round trip (a
    per-event insert, a separate outbox insert, the pool's reset query on release)."""
    pool = await create_pool(database_url, min_size=1, max_size=1)  # pg_pool migrated it
    statements: list[str] = []
    try:
        async with pool.acquire() as conn:
            conn.add_query_logger(lambda record: statements.append(" ".join(record.query.split())))
        ticket_id = new_ticket_id()
        events = lifecycle(ticket_id)
        await EventStore(pool, Outbox(pool, POLICY)).append_events(batch(events[:3]))
        store = EventStore(pool, Outbox(pool, POLICY))  # another worker: row unknown

        statements.clear()
        locked = batch(events[3:8])
        locked.handoffs.append(work_order(ticket_id, 4))
        assert await store.append_events(locked) == 5
        assert [q[:30] for q in statements] == [
            "BEGIN; SELECT pg_advisory_xact",
            "WITH queued AS ( INSERT INTO o",
            "INSERT INTO tickets (ticket_id",
            "COMMIT",
            "SELECT pg_notify($1, t), CASE ",
        ]

        statements.clear()
        known = batch(events[8:10])
        known.handoffs.append(work_order(ticket_id, 9))
        assert await store.append_events(known) == 2
        assert len(statements) == 2 and "INSERT INTO tickets" in statements[0]
        assert statements[1].startswith("SELECT pg_notify")

        assert (
            await pool.fetchval("SELECT count(*) FROM outbox WHERE ticket_id = $1", ticket_id) == 4
        )
        assert await store.ticket(ticket_id) == project_all(None, events[:10])
    finally:
        await pool.close()


async def test_workers_appending_to_one_ticket_keep_its_row_right(pg_pool: Pool) -> None:
    """Each store projects from the row it wrote last; a row another store moved on
    since fails the compare-and-set and is caught up under the lock instead."""
    first, second = EventStore(pg_pool), EventStore(pg_pool)
    ticket_id = new_ticket_id()
    events = lifecycle(ticket_id)

    assert await first.append_events(batch(events[:3])) == 3
    assert await second.append_events(batch(events[:3])) == 0  # unknown row: locked way
    assert await second.append_events(batch(events[3:5])) == 2
    # `first` still holds the row at seq 3: its retry of 4-5 must not move the row back.
    assert await first.append_events(batch(events[3:5])) == 0
    assert await first.append_events(batch(events[5:7])) == 2

    assert await stored_seqs(pg_pool, ticket_id) == list(range(1, 8))
    assert await first.ticket(ticket_id) == project_all(None, events[:7])


async def test_locked_appends_take_turns_with_the_lock_earlier_workers_take(
    pg_pool: Pool,
) -> None:
    """The lock key is hashtext(ticket_id), as before BEGIN and the lock shared a round
    trip: during a rolling deploy, old and new workers still exclude each other."""
    ticket_id = new_ticket_id()
    events = lifecycle(ticket_id)
    await EventStore(pg_pool).append_events(batch(events[:2]))
    store = EventStore(pg_pool)  # has not seen the row: appends the locked way
    async with pg_pool.acquire() as holder, holder.transaction():
        await holder.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))", TICKET_LOCK_CLASS, ticket_id
        )
        append = asyncio.create_task(store.append_events(batch(events[2:4])))
        waiting = 0
        for _ in range(500):  # until the append queues behind the lock
            waiting = await holder.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            if waiting:
                break
            await asyncio.sleep(0.01)
        assert waiting == 1
        assert not append.done()
    assert await append == 2


async def test_any_ticket_id_is_safe_in_the_lock_statement(pg_pool: Pool) -> None:
    ticket_id = "T-'); DROP TABLE tickets; -- 工单 \\x"
    events = lifecycle(ticket_id)[:4]
    assert await EventStore(pg_pool).append_events(batch(events[:2])) == 2
    # A store that has not seen the ticket appends the locked way.
    assert await EventStore(pg_pool).append_events(batch(events[2:])) == 2
    assert await EventStore(pg_pool).events(ticket_id) == events
    assert await EventStore(pg_pool).ticket(ticket_id) == project_all(None, events)


# ---------------------------------------------------------------- the typed record


async def test_every_event_type_round_trips_its_model(store: EventStore) -> None:
    assert set(MINIMAL) == set(EventType), "a payload example for every event type"
    ticket_id = new_ticket_id()
    sent = [event(ticket_id, seq, kind) for seq, kind in enumerate(EventType, start=1)]
    assert await store.append_events(batch(sent)) == len(sent)
    back = await store.events(ticket_id)
    assert back == sent
    assert [type(e.data) for e in back] == [PAYLOADS[kind] for kind in EventType]


async def test_events_written_by_older_code_still_read(store: EventStore, pg_pool: Pool) -> None:
    """Before the typed record: no words, and `from` where `previous` is now."""
    ticket_id = new_ticket_id()
    await pg_pool.execute(
        "INSERT INTO ticket_events (ticket_id, seq, type, occurred_at, actor_id, actor_role, data)"
        " VALUES ($1, 1, 'status_changed', $2, 'agent-7', 'agent', $3),"
        " ($1, 2, 'customer_replied', $2, 'c-1', 'customer', $4)",
        ticket_id,
        T0,
        {"from": "new", "to": "in_progress"},
        {"kind": "not_solved"},
    )
    changed, replied = await store.events(ticket_id)
    assert isinstance(changed.data, StatusChanged)
    assert (changed.data.previous, changed.data.to) == ("new", "in_progress")
    assert isinstance(replied.data, CustomerReplied)
    assert (replied.data.kind, replied.data.text) == ("not_solved", None)
