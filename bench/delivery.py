"""Part 6: deliveries, through the outbox relay the worker runs, to a real HTTP receiver.

The rows are the ones a real ticket of this run queued (the calibration ticket's batches,
re-addressed to fresh tickets), written through `EventStore.append_events` as the worker
writes them. The relay is `activities.delivery.OutboxRelay` with the default settings
(its batch and poll interval), posting signed webhooks to the dev receiver
(`workers.receiver`) served by uvicorn in this process.

- Deliveries/s: a backlog of rows, delivered until none is due. The receiver runs in the
  relay's own process and event loop, so the figure is a floor for separate machines.
- End-to-end latency: tickets append their batches at a steady pace while the relay
  runs, and each row's latency is the receiver's arrival time minus the moment its
  append committed (`outbox.created_at`, the same machine's clock).
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
from workflows.contracts import EventBatch, RelayRound
from workflows.policy import ServicePolicy


@dataclass(frozen=True)
class DeliveryFigures:
    backlog: int
    backlog_seconds: float
    latency_rows: int
    p50_ms: float
    p99_ms: float
    paced_tickets_per_s: float

    @property
    def per_second(self) -> float:
        return self.backlog / self.backlog_seconds


async def measure(
    pool: Pool,
    template: Sequence[EventBatch],
    backlog_tickets: int,
    paced_tickets: int,
    paced_per_s: float,
    prefix: str,
) -> DeliveryFigures:
    policy = ServicePolicy()
    # Rows the earlier parts left (their worker ran no relay) are not this part's: the
    # bench's database is its own, so they are set aside as failed.
    await pool.execute("UPDATE outbox SET failed_at = now() WHERE dispatched_at IS NULL")
    secret = secrets.token_urlsafe(16)
    inbox = Inbox(secret=secret)
    port = free_port()
    stop = asyncio.Event()
    receiver = asyncio.create_task(serve_receiver(inbox, "127.0.0.1", port, stop))
    relay = OutboxRelay(
        pool,
        policy,
        MessageTemplates.load(),
        DeliveryConfig(webhook_url=f"http://127.0.0.1:{port}{PATH}", secret=SecretStr(secret)),
        client=None,
    )
    store = EventStore(pool, Outbox(pool, policy))
    try:
        await asyncio.sleep(0.5)  # the receiver is up
        # Deliveries/s: a backlog, then the relay until nothing is due.
        for number in range(backlog_tickets):
            for batch in readdress(template, f"{prefix}-backlog-{number}"):
                await store.append_events(batch)
        backlog = 0
        started = time.perf_counter()
        while (passed := await relay.deliver_once()) != RelayRound():
            backlog += passed.delivered
        seconds = time.perf_counter() - started

        # Latency: the relay as the worker runs it, while tickets append at a pace.
        running = asyncio.create_task(relay.deliver_for(timedelta(days=1)))
        for number in range(paced_tickets):
            for batch in readdress(template, f"{prefix}-paced-{number}"):
                await store.append_events(batch)
            await asyncio.sleep(1 / paced_per_s)
        await asyncio.sleep(2.0)  # the last rows arrive
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        rows = await pool.fetch(
            "SELECT dedupe_key, created_at FROM outbox WHERE ticket_id LIKE $1",
            f"{prefix}-paced-%",
        )
        missing = [row["dedupe_key"] for row in rows if row["dedupe_key"] not in inbox.received]
        if missing:
            # A row that never arrived is no latency to leave out: the figure would lie.
            raise RuntimeError(f"{len(missing)} of {len(rows)} paced rows never arrived")
        latencies = [
            (inbox.received[row["dedupe_key"]].received_at - row["created_at"]).total_seconds()
            * 1000
            for row in rows
        ]
        return DeliveryFigures(
            backlog=backlog,
            backlog_seconds=seconds,
            latency_rows=len(latencies),
            p50_ms=percentile(latencies, 50),
            p99_ms=percentile(latencies, 99),
            paced_tickets_per_s=paced_per_s,
        )
    finally:
        await relay.close()
        stop.set()
        await receiver
