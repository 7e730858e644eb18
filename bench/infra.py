"""What a bench run stands on: its own Temporal dev server, PostgreSQL and worker process.

The dev server is `make dev`'s launcher (`workers.devstack.TemporalDevServer`) with
temporal-dev.yml's behaviour flags (pragmas, search attributes, dynamic config, read
through `workers.devspec`), on free ports and a SQLite file in the run's temporary
directory, so a bench never touches the developer's `make dev` stack. PostgreSQL is an embedded server in the same directory
unless `DATABASE_URL` is set; then the bench works in a schema of its own and drops it.
The worker runs in a child process so its memory and CPU are its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO

import asyncpg
import psutil  # type: ignore[import-untyped, unused-ignore]
from temporalio.client import Client

from activities.database import schema_for_run
from workers.codec import StaticKeys, data_converter
from workers.devspec import LOCAL_IP, DevServerSpec, load_dev_spec
from workers.devstack import TemporalDevServer, free_port, log_tail, stop_process
from workers.settings import STICKY_CACHE, STICKY_WAIT, WORKFLOW_SANDBOX, WORKFLOW_TASK_SLOTS

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


class BenchSetupError(Exception):
    """Something the bench needs could not be started."""


@dataclass
class DevServer:
    """A `temporal server start-dev` child process and a client connected to it."""

    process: asyncio.subprocess.Process
    client: Client
    target: str
    namespace: str
    log_path: Path
    db_path: Path
    # Flags beyond temporal-dev.yml's, e.g. a lowered continue-as-new suggestion.
    extra_args: tuple[str, ...]

    @property
    def pid(self) -> int:
        return self.process.pid

    async def stop(self) -> None:
        await stop_process(self.process, STOP_TIMEOUT_S)


async def start_dev_server(
    work_dir: Path,
    name: str,
    dynamic_config: Sequence[str] = (),
    spec: DevServerSpec | None = None,
) -> DevServer:
    """temporal-dev.yml's server on free ports; `dynamic_config` adds KEY=VALUE items."""
    spec = spec or load_dev_spec()
    port, ui_port = free_port(), free_port()
    db_path = work_dir / f"{name}.db"
    extra = tuple(f"--dynamic-config-value={item}" for item in dynamic_config)
    target = f"{LOCAL_IP}:{port}"
    server = await TemporalDevServer.launch(
        [*spec.placed_args(port, ui_port, db_path), *extra], work_dir / f"{name}.log", target
    )
    try:
        client = await server.wait_ready(lambda: connect(target, spec.namespace), spec.namespace)
    except BaseException:
        await stop_process(server.process, STOP_TIMEOUT_S)
        raise
    assert client is not None  # asked to stop by nobody: a client, or an error
    return DevServer(
        server.process, client, target, spec.namespace, server.log_path, db_path, extra
    )


# Payloads are sealed as in production (workers/codec.py), so the figures include the
# encryption. A fixed key: the bench's histories are throwaway.
BENCH_KEYS = StaticKeys({"bench": hashlib.sha256(b"ticketflow bench").digest()}, "bench")


async def connect(target: str, namespace: str) -> Client:
    return await Client.connect(
        target, namespace=namespace, data_converter=data_converter(BENCH_KEYS)
    )


# ---------------------------------------------------------------- PostgreSQL


@dataclass
class Database:
    """Where the event store lives for this run."""

    url: str
    embedded: bool
    schema: str | None  # a schema of our own inside someone else's database
    pid: int | None = None  # the embedded server's postmaster, whose CPU we can count

    @property
    def description(self) -> str:
        if self.embedded:
            return "embedded PostgreSQL (temporary directory)"
        return f"DATABASE_URL, schema {self.schema} (dropped at the end)"


@contextlib.asynccontextmanager
async def database(work_dir: Path) -> AsyncIterator[Database]:
    configured = os.environ.get("DATABASE_URL")
    if configured:
        async with schema_for_run(configured, "ticketflow_bench") as schema:
            yield Database(schema.url, embedded=False, schema=schema.name)
        return
    from workers.embedded_db import start_embedded_postgres

    server = await start_embedded_postgres(work_dir)
    try:
        pid = server._server.get_pid()
        yield Database(server.url, embedded=True, schema=None, pid=pid)
    finally:
        await server.stop()


async def postgres_facts(url: str) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        facts: dict[str, str] = {"version": str(await conn.fetchval("SHOW server_version"))}
        for setting in ("shared_buffers", "synchronous_commit", "fsync", "max_connections"):
            facts[setting] = str(await conn.fetchval(f"SHOW {setting}"))
        return facts
    finally:
        await conn.close()


# ---------------------------------------------------------------- the worker process


@dataclass
class WorkerProcess:
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    async def stop(self) -> None:
        await stop_process(self.process, STOP_TIMEOUT_S)


async def spawn_python(
    args: list[str], env: dict[str, str], log_path: Path
) -> asyncio.subprocess.Process:
    """`python <args>` in a session of its own, its output to `log_path`. Settings that
    may hold a password go in `env`, never in argv."""
    log_file: IO[bytes] = log_path.open("wb")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    finally:
        log_file.close()


async def start_worker_process(
    server: DevServer,
    database_url: str,
    ticket_queue: str,
    twin_queue: str,
    work_dir: Path,
    name: str,
    log_level: str,
    bytecode_cache: bool = True,
    relay: tuple[str, str] | None = None,
    sticky_cache: int = STICKY_CACHE,
    relay_settings: str = "",
    sticky_wait: timedelta = STICKY_WAIT,
    sandboxed: bool = WORKFLOW_SANDBOX,
    workflow_task_slots: int = WORKFLOW_TASK_SLOTS,
) -> WorkerProcess:
    """`python -m bench.worker_process`: the real ticket worker and the twin's worker.

    The sandbox imports a workflow's module afresh for every workflow it starts or
    brings back into its cache. An installed package has bytecode for it (pip compiles
    on install); an editable install under PYTHONDONTWRITEBYTECODE=1 has none and
    compiles workflows/ticket.py from source each time. `bytecode_cache` gives the
    worker a bytecode cache in the run's directory, as installed code has.
    With `relay` (a receiver's URL and secret), the worker runs the outbox relay too,
    with `relay_settings` (JSON of DeliveryConfig's fields) over the defaults.
    `sticky_cache` is both workers' max_cached_workflows, and `sticky_wait` their
    sticky_queue_schedule_to_start_timeout; `sandboxed` runs tickets (never twins) in
    the workflow sandbox or not, as `ticketflow worker` does by default.
    """
    ready = work_dir / f"{name}.ready"
    env = {**os.environ, "BENCH_DATABASE_URL": database_url}
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(work_dir / "pycache")
    if relay is not None:
        env["BENCH_RELAY_URL"], env["BENCH_RELAY_SECRET"] = relay
        env["BENCH_RELAY_SETTINGS"] = relay_settings
    log_path = work_dir / f"{name}.log"
    process = await spawn_python(
        [
            "-m",
            "bench.worker_process",
            "--target",
            server.target,
            "--namespace",
            server.namespace,
            "--ticket-queue",
            ticket_queue,
            "--twin-queue",
            twin_queue,
            "--ready-file",
            str(ready),
            "--log-level",
            log_level,
            "--sticky-cache",
            str(sticky_cache),
            "--sticky-wait",
            str(sticky_wait.total_seconds()),
            "--sandbox" if sandboxed else "--no-sandbox",
            "--workflow-task-slots",
            str(workflow_task_slots),
        ],
        env,
        log_path,
    )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready.exists():
        if process.returncode is not None or time.monotonic() > deadline:
            await stop_process(process, STOP_TIMEOUT_S)
            raise BenchSetupError(f"the bench worker did not start:\n{log_tail(log_path)}")
        await asyncio.sleep(0.1)
    return WorkerProcess(process, log_path)


# ---------------------------------------------------------------- process figures


def cpu_seconds(pid: int, with_children: bool = False) -> float:
    """User + system CPU time the process (all its threads, and with `with_children`
    its live child processes, e.g. PostgreSQL's backends) has used so far."""
    process = psutil.Process(pid)
    processes = [process, *(process.children(recursive=True) if with_children else [])]
    total = 0.0
    for each in processes:
        try:
            times = each.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def busy_cpu_seconds() -> float:
    """CPU time the whole machine has spent not idle, over all cores."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def stolen_cpu_seconds() -> float:
    """CPU time the hypervisor gave other guests while this machine's cores wanted it
    (Linux's steal time), over all cores: a run with much of it measured a slower machine."""
    return float(getattr(psutil.cpu_times(), "steal", 0.0))


def rss_mib(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


async def cpu_percent(pids: Sequence[int], seconds: float) -> list[float]:
    """Each process's CPU use over the window, in % of one core."""
    processes = [psutil.Process(pid) for pid in pids]
    for process in processes:
        process.cpu_percent(None)
    await asyncio.sleep(seconds)
    return [float(process.cpu_percent(None)) for process in processes]
