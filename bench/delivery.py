"""Part 6: deliveries, through the outbox relay the worker runs, to a real HTTP receiver.

The rows are the ones a real ticket of this run queued (the calibration ticket's batches,
re-addressed to fresh tickets), written through `EventStore.append_events` as the worker
writes them. The relay is `activities.delivery.OutboxRelay` with the default settings
(its batch and poll interval), posting signed webhooks to the dev receiver
(`workers.receiver`) served by uvicorn in this process.

- Deliveries/s: a backlog of rows, delivered until none is left, by one relay round
  (`deliver_for`, its passes overlapping) and then (another backlog) by two rounds at
  once on the same relay, as a worker running both relay activities does. The receiver
  runs in the relays' own process and event loop, so the figure is a floor for separate
  machines.
- End-to-end latency: tickets start appending their batches on a fixed schedule while
  one relay runs, then two, and each row's latency is the receiver's arrival time minus
  the moment its append committed (`outbox.created_at`, the same machine's clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from pydantic import SecretStr

from activities.database import Pool
from activities.delivery import DeliveryConfig, OutboxRelay
from activities.event_store import EventStore
from activities.messages import MessageTemplates
from activities.outbox import Outbox
from bench.store import readdress
from bench.throughput import percentile
from workers.devstack import free_port
from workers.receiver import PATH, Inbox, serve_receiver
from workflows.contracts import EventBatch
from workflows.policy import ServicePolicy


@dataclass(frozen=True)
class Backlog:
    relays: int
    rows: int
    seconds: float
    # CPU time of this process (relays and receiver) a row: on a machine shared with
    # other work, the figure that compares runs when the wall clock does not.
    cpu_ms_per_row: float

    @property
    def per_second(self) -> float:
        return self.rows / self.seconds


@dataclass(frozen=True)
class Latency:
    relays: int
    rows: int
    p50_ms: float
    p99_ms: float
    # Tickets appended per second as paced, and as the appends kept up.
    asked_per_s: float
    appended_per_s: float


@dataclass(frozen=True)
class DeliveryFigures:
    backlogs: list[Backlog]
    latencies: list[Latency]


async def measure(
    pool: Pool,
    template: Sequence[EventBatch],
    backlog_tickets: int,
    paced_tickets: int,
    paced_per_s: float,
    prefix: str,
) -> DeliveryFigures:
    """A backlog through one relay, then another through two; then tickets at a pace
    with one relay, and with two (relays sharing the process, as a worker runs them)."""
    policy = ServicePolicy()
    # Rows the earlier parts left (their worker ran no relay) are not this part's: the
    # bench's database is its own, so they are set aside as failed.
    await pool.execute("UPDATE outbox SET failed_at = now() WHERE dispatched_at IS NULL")
    secret = secrets.token_urlsafe(16)
    inbox = Inbox(secret=secret)
    port = free_port()
    stop = asyncio.Event()
    receiver = asyncio.create_task(serve_receiver(inbox, "127.0.0.1", port, stop))
    config = DeliveryConfig(webhook_url=f"http://127.0.0.1:{port}{PATH}", secret=SecretStr(secret))
    # The worker builds one relay and runs its two activities on it (`workers.main`):
    # two rounds at once share its HTTP session and its requests per route.
    relay = OutboxRelay(pool, policy, MessageTemplates.load(), config, client=None)
    relays = [relay, relay]
    store = EventStore(pool, Outbox(pool, policy))
    try:
        await asyncio.sleep(0.5)  # the receiver is up
        backlogs = []
        for count in (1, 2):
            for number in range(backlog_tickets):
                for batch in readdress(template, f"{prefix}-backlog{count}-{number}"):
                    await store.append_events(batch)
            backlogs.append(await _drain(pool, inbox, relays[:count]))
        latencies = []
        for count in (1, 2):
            latencies.append(
                await _paced(
                    pool,
                    store,
                    inbox,
                    relays[:count],
                    template,
                    paced_tickets,
                    paced_per_s,
                    f"{prefix}-paced{count}",
                )
            )
        return DeliveryFigures(backlogs, latencies)
    finally:
        await relay.close()
        stop.set()
        await receiver


async def _drain(pool: Pool, inbox: Inbox, relays: Sequence[OutboxRelay]) -> Backlog:
    """Deliveries/s: the relays as the worker runs them (`deliver_for`, its passes
    overlapping), from their start until no row of the backlog is left undelivered."""
    backlog = await pool.fetchval(_LEFT)
    arrived = len(inbox.received) + backlog
    ending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    started, cpu = time.perf_counter(), time.process_time()
    rounds = [
        asyncio.create_task(relay.deliver_for(timedelta(days=1), stopping=ending))
        for relay in relays
    ]
    try:
        # The receiver's count first (in memory), then the outbox (a query) for the
        # last settles.
        while True:
            if len(inbox.received) >= arrived and not await pool.fetchval(_LEFT):
                break
            await asyncio.sleep(0.01)
        seconds, cpu_ms = time.perf_counter() - started, (time.process_time() - cpu) * 1000
    finally:
        ending.set_result(None)
        await asyncio.gather(*rounds)
    # The rows written delivered, counted in the outbox: a pass cut short by the stop
    # (its rows all written, its count not yet returned) reports none.
    return Backlog(len(relays), backlog, seconds, cpu_ms / backlog)


_LEFT = "SELECT count(*) FROM outbox WHERE dispatched_at IS NULL AND failed_at IS NULL"


async def _paced(
    pool: Pool,
    store: EventStore,
    inbox: Inbox,
    relays: Sequence[OutboxRelay],
    template: Sequence[EventBatch],
    tickets: int,
    per_s: float,
    prefix: str,
) -> Latency:
    """End-to-end latency: the relays as the worker runs them, while tickets append at
    a pace (each ticket's batches in order, tickets started on a fixed schedule)."""
    running = [asyncio.create_task(relay.deliver_for(timedelta(days=1))) for relay in relays]

    async def ticket(number: int) -> None:
        for batch in readdress(template, f"{prefix}-{number}"):
            await store.append_events(batch)

    appending = []
    started = time.perf_counter()
    for number in range(tickets):
        await asyncio.sleep(max(0.0, started + number / per_s - time.perf_counter()))
        appending.append(asyncio.create_task(ticket(number)))
    await asyncio.gather(*appending)
    appended_per_s = tickets / (time.perf_counter() - started)
    rows = await pool.fetch(
        "SELECT dedupe_key, created_at FROM outbox WHERE ticket_id LIKE $1", f"{prefix}-%"
    )
    for _ in range(300):  # the last rows arrive, within 30 s
        if all(row["dedupe_key"] in inbox.received for row in rows):
            break
        await asyncio.sleep(0.1)
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    missing = [row["dedupe_key"] for row in rows if row["dedupe_key"] not in inbox.received]
    if missing:
        # A row that never arrived is no latency to leave out: the figure would lie.
        raise RuntimeError(f"{len(missing)} of {len(rows)} paced rows never arrived")
    latencies = [
        (inbox.received[row["dedupe_key"]].received_at - row["created_at"]).total_seconds() * 1000
        for row in rows
    ]
    return Latency(
        relays=len(relays),
        rows=len(latencies),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        asked_per_s=per_s,
        appended_per_s=appended_per_s,
    )
