"""Part relay-crash: a relay killed with SIGKILL mid-backlog, beside a relay that lives.

Two worker processes (`bench.worker_process`: the real ticket worker and its outbox relay,
as `ticketflow worker` runs them) share the bench's outbox and post to the dev receiver
(`workers.receiver`) in this process. Each has a task queue of its own, so each runs one
relay activity whatever Temporal's placement. A backlog of tickets, each an
acknowledgement and an agent's reply to app chat (the reply waits for the
acknowledgement), is committed in one transaction; when a quarter of it has arrived, the
first worker is killed with SIGKILL. From the kill on:

- the stall: the longest the receiver waited for its next new row (the rows the dead
  relay held wait for their lease to run out; the rest go on through the living relay);
- the last row: when the backlog's last row arrived;
- repeats: rows the receiver got more than once (sent by the dead relay but not yet
  written delivered: the living relay sends them again under the same Idempotency-Key,
  which the receiver drops);
- order: whether every ticket's reply still arrived after its acknowledgement.

Once with a 60 s lease (what a dead relay cost before leases were renewed: its rows
waited up to a lease), once with the default lease, renewed every third of it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.service import RPCError

from activities.database import Pool
from activities.delivery import DeliveryConfig
from activities.event_store import OUTBOX_CHANNEL
from activities.outbox import Outbox, insert_rows_sql, row_arrays
from bench import infra
from workers.devstack import free_port
from workers.receiver import PATH, Inbox, serve_receiver
from workers.settings import WORKFLOW_SANDBOX
from workflows.contracts import CustomerMessage, MessageKind, MessageParams
from workflows.policy import ServicePolicy
from workflows.relay import relay_workflow_id
from workflows.vocabulary import Channel

# The lease of relays before issue 25's second step, and the one they run with now.
LEASES = (timedelta(seconds=60), DeliveryConfig.model_fields["lease"].default)
# The dead relay's rows wait out its lease; the rest take seconds.
_ARRIVE_WITHIN = timedelta(minutes=3)


@dataclass(frozen=True)
class Crash:
    lease_s: float
    rows: int
    arrived_before_kill: int
    stall_s: float
    last_row_s: float
    repeated: int
    in_order: bool


async def measure(
    server: infra.DevServer,
    database_url: str,
    pool: Pool,
    work: Path,
    tickets: int,
    prefix: str,
    say: Callable[[str], None],
    sandboxed: bool = WORKFLOW_SANDBOX,
) -> list[Crash]:
    """One kill per lease in `LEASES`, each over a backlog of its own; `sandboxed` is the
    workers' ticket lane, as the bench's `--sandbox`."""
    crashes = []
    for number, lease in enumerate(LEASES):
        say(f"relay crash: {tickets * 2:,} rows, lease {lease.total_seconds():.0f} s, kill -9")
        crashes.append(
            await _crash(
                server, database_url, pool, work, tickets, lease, f"{prefix}-{number}", sandboxed
            )
        )
    return crashes


async def _crash(
    server: infra.DevServer,
    database_url: str,
    pool: Pool,
    work: Path,
    tickets: int,
    lease: timedelta,
    prefix: str,
    sandboxed: bool,
) -> Crash:
    inbox = Inbox(secret=secrets.token_urlsafe(16))
    port = free_port()
    stop = asyncio.Event()
    receiving = asyncio.create_task(serve_receiver(inbox, "127.0.0.1", port, stop))
    settings = json.dumps({"lease": lease.total_seconds(), "relays": 1})
    workers: list[infra.WorkerProcess] = []
    try:
        for name in ("doomed", "living"):
            workers.append(
                await infra.start_worker_process(
                    server,
                    database_url,
                    f"{prefix}-{name}",
                    f"{prefix}-{name}-twins",
                    work,
                    f"{prefix}-{name}",
                    "WARNING",
                    relay=(f"http://127.0.0.1:{port}{PATH}", inbox.secret),
                    relay_settings=settings,
                    sandboxed=sandboxed,
                )
            )
        for name in ("doomed", "living"):
            await _relay_started(server, f"{prefix}-{name}")
        rows = await _queue_backlog(pool, tickets, prefix)
        await _until(lambda: len(inbox.received) >= rows // 4)
        workers[0].process.kill()  # SIGKILL
        killed_at = datetime.now(UTC)
        arrived_before = len(inbox.received)
        await workers[0].process.wait()
        await _until(lambda: len(inbox.received) >= rows, _ARRIVE_WITHIN)
    finally:
        for worker in workers:
            await worker.stop()
        stop.set()
        await receiving
    arrivals = sorted(r.received_at for r in inbox.received.values() if r.received_at > killed_at)
    gaps = [(b - a).total_seconds() for a, b in zip([killed_at, *arrivals], arrivals, strict=False)]
    keys = set(inbox.received)
    in_order = all(
        inbox.received[f"{ticket}:msg:1"].received_at
        < inbox.received[f"{ticket}:msg:2"].received_at
        for ticket in {r.ticket_id for r in inbox.received.values()}
        if {f"{ticket}:msg:1", f"{ticket}:msg:2"} <= keys
    )
    return Crash(
        lease_s=lease.total_seconds(),
        rows=rows,
        arrived_before_kill=arrived_before,
        stall_s=max(gaps, default=0.0),
        last_row_s=(arrivals[-1] - killed_at).total_seconds() if arrivals else 0.0,
        repeated=sum(1 for r in inbox.received.values() if r.copies > 1),
        in_order=in_order,
    )


async def _relay_started(server: infra.DevServer, task_queue: str) -> None:
    """Until the worker's relay activity runs (it has picked up its round)."""
    handle = server.client.get_workflow_handle(relay_workflow_id(task_queue))

    async def started() -> bool:
        try:
            described = await handle.describe()
        except RPCError:
            return False
        return any(
            pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            for pending in described.raw_description.pending_activities
        )

    for _ in range(600):
        if await started():
            return
        await asyncio.sleep(0.1)
    raise infra.BenchSetupError(f"the relay of {task_queue} did not start")


async def _queue_backlog(pool: Pool, tickets: int, prefix: str) -> int:
    """The backlog, committed at once, and the relays told: an acknowledgement and a reply
    per ticket, in that order."""
    outbox = Outbox(pool, ServicePolicy())
    insert = insert_rows_sql(2)
    count = 0
    async with pool.acquire() as conn, conn.transaction():
        for number in range(tickets):
            ticket_id = f"{prefix}-ticket-{number}"
            rows = outbox.rows(
                [
                    _message(ticket_id, 1, MessageKind.ACKNOWLEDGEMENT, MessageParams()),
                    _message(ticket_id, 2, MessageKind.AGENT_REPLY, MessageParams(text="在看")),
                ],
                [],
            )
            await conn.execute(insert, ticket_id, *row_arrays(rows))
            count += len(rows)
    await pool.execute("SELECT pg_notify($1, '')", OUTBOX_CHANNEL)
    return count


def _message(
    ticket_id: str, number: int, kind: MessageKind, params: MessageParams
) -> CustomerMessage:
    return CustomerMessage(
        ticket_id=ticket_id,
        dedupe_key=f"{ticket_id}:msg:{number}",
        channel=Channel.APP_CHAT,
        customer_id="bench-customer",
        locale="zh-CN",
        kind=kind,
        params=params,
    )


async def _until(done: Callable[[], bool], within: timedelta = _ARRIVE_WITHIN) -> None:
    for _ in range(int(within.total_seconds() * 100)):
        if done():
            return
        await asyncio.sleep(0.01)
    raise infra.BenchSetupError("the receiver did not get the backlog in time")
