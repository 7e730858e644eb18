"""Processes end cleanly and promptly (issue 19, item 14).

A worker asked to stop does not sit out its graceful timeout for the outbox relay: the
relay's round ends at once and hands the row it was sending back, so the next worker's
relay delivers it now rather than when its lease runs out. Real processes, a real dev
server and real PostgreSQL; the receiver is a bare HTTP server that holds its first
request open, as a slow department system would.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.database import Pool, with_search_path
from activities.delivery import DeliveryConfig, OutboxRelay
from activities.messages import MessageTemplates
from activities.outbox import Outbox, OutboxRow
from tests.conftest import schema_of_its_own
from tests.waiting import eventually
from tests.workers.conftest import ROOT, spawn_ticketflow, ticketflow_env
from workers.devstack import free_port
from workers.main import Workers, build_worker, review_schedule_id, surge_schedule_id
from workflows.contracts import Handoff, HandoffFacts, HandoffKind
from workflows.policy import ServicePolicy
from workflows.relay import relay_workflow_id
from workflows.vocabulary import Priority

SECRET = "shutdown-secret-" + "s" * 16
# Long, so that waiting it out cannot pass for stopping promptly: the worker must be gone
# in a fraction of it, and the row back in a fraction of its lease.
GRACEFUL = timedelta(seconds=60)
LEASE = timedelta(seconds=300)
PROMPTLY = 15.0


@dataclass
class HeldReceiver:
    """Answers 200 to every request but the first, which it holds open until the end."""

    keys: list[str] = field(default_factory=list)
    first_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
        await reader.readexactly(int(headers.get("content-length", "0")))
        self.keys.append(headers.get("idempotency-key", headers.get("Idempotency-Key", "")))
        if len(self.keys) == 1:
            self.first_arrived.set()
            await self.release.wait()
        with contextlib.suppress(ConnectionError):
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            await writer.drain()
        writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[HeldReceiver, str]]:
    held = HeldReceiver()
    server = await asyncio.start_server(held.handle, "127.0.0.1", free_port())
    port = server.sockets[0].getsockname()[1]
    try:
        yield held, f"http://127.0.0.1:{port}/deliveries"
    finally:
        held.release.set()
        server.close()


@pytest.fixture
async def own_database(database_url: str) -> AsyncIterator[tuple[Pool, str]]:
    """The relay delivers every due row it sees: this test's rows only."""
    async with schema_of_its_own(database_url, "shutdown") as pool:
        schema = await pool.fetchval("SELECT current_schema()")
        yield pool, with_search_path(database_url, schema)


async def _clean_up(client: Client, task_queue: str) -> None:
    with contextlib.suppress(RPCError):
        await client.get_workflow_handle(relay_workflow_id(task_queue)).terminate("test done")
    for schedule in (surge_schedule_id(task_queue), review_schedule_id(task_queue)):
        with contextlib.suppress(RPCError):
            await client.get_schedule_handle(schedule).delete()


async def test_a_stopping_worker_leaves_the_relay_and_its_row_to_the_next_worker_at_once(
    dev_env: WorkflowEnvironment,
    own_database: tuple[Pool, str],
    receiver: tuple[HeldReceiver, str],
    tmp_path: Path,
) -> None:
    pool, worker_database_url = own_database
    held, url = receiver
    task_queue = f"shutdown-{uuid.uuid4()}"
    ticket_id = f"ticket-{uuid.uuid4()}"
    key = f"{ticket_id}:work_order:1:tech"
    policy = ServicePolicy()
    order = Handoff(
        ticket_id=ticket_id,
        dedupe_key=key,
        kind=HandoffKind.WORK_ORDER,
        recipients=["tech"],
        summary="支付失败",
        tag="故障-支付-A級",
        priority=Priority.A,
        facts=HandoffFacts(),
    )
    await Outbox(pool, policy).enqueue(
        ticket_id,
        [OutboxRow(key, "work_order", "queue://tech", order.model_dump(mode="json"), 1)],
    )
    env = ticketflow_env(
        dev_env,
        worker_database_url,
        task_queue,
        tmp_path / "data",
        TICKETFLOW_DELIVERY__WEBHOOK_URL=url,
        TICKETFLOW_DELIVERY__SECRET=SECRET,
        TICKETFLOW_DELIVERY__LEASE=f"PT{int(LEASE.total_seconds())}S",
        TICKETFLOW_DELIVERY__REQUEST_TIMEOUT=f"PT{int(LEASE.total_seconds())}S",
        TICKETFLOW_GRACEFUL_SHUTDOWN=f"{int(GRACEFUL.total_seconds())}s",
    )
    worker = await spawn_ticketflow("worker", "worker", env)
    second_worker: Workers | None = None
    second: asyncio.Task[None] | None = None
    relay: OutboxRelay | None = None
    try:
        # The first worker's relay is sending the row, and the receiver holds it.
        await asyncio.wait_for(held.first_arrived.wait(), timeout=120)

        worker.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(worker.process.wait(), timeout=PROMPTLY)
        except TimeoutError:
            pytest.fail(
                f"the worker was still there {PROMPTLY} s after SIGTERM "
                f"(graceful timeout {GRACEFUL}):\n{worker.tail(20)}"
            )
        assert worker.process.returncode == 0, worker.tail(20)

        # The next worker's relay takes the round over and delivers the row now, long
        # before the first relay's lease on it would have run out.
        config = DeliveryConfig(
            webhook_url=url,
            secret=SecretStr(SECRET),
            lease=LEASE,
            request_timeout=timedelta(seconds=5),
        )
        relay = OutboxRelay(pool, policy, MessageTemplates.load(), config, dev_env.client)
        second_worker = build_worker(dev_env.client, task_queue, pool, policy, relay=relay)
        second = asyncio.create_task(second_worker.run())

        async def dispatched() -> object:
            return await pool.fetchval(
                "SELECT dispatched_at FROM outbox WHERE dedupe_key = $1", key
            )

        assert await eventually(dispatched, lambda at: at is not None, within=60) is not None
        # Sent twice under one key: the receiver drops the copy if the first got through.
        assert held.keys == [key, key]
    finally:
        await worker.end(within=0)
        await _clean_up(dev_env.client, task_queue)
        if second_worker is not None and second is not None:
            await second_worker.shutdown()
            await second
        if relay is not None:
            await relay.close()


# A process whose stop never finishes, as the worker that logged "worker stopped" and then
# hung inside the SDK's core until SIGKILL: here the loop blocks in a call that never
# returns, with the stop bound of `ticketflow worker` (workers.lifecycle) made short.
STUCK = """
import asyncio, time
from datetime import timedelta
from workers.lifecycle import stop_on_signals

def wedged_in_native_code():
    time.sleep(3600)

async def serve():
    stop = asyncio.Event()
    stop_on_signals(stop, timedelta(seconds=2))
    print("ready", flush=True)
    await stop.wait()
    wedged_in_native_code()

asyncio.run(serve())
"""


async def test_a_process_that_cannot_stop_says_where_it_is_stuck_and_exits_non_zero() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        STUCK,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        assert await asyncio.wait_for(process.stdout.readline(), timeout=60) == b"ready\n"
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 1
    said = stderr.decode(errors="replace")
    assert "Timeout" in said and "wedged_in_native_code" in said, said
