"""Part 10: the HTTP API under load, two API processes in front of the bench's worker
(or `--workers` of them) (issue 25).

Two `ticketflow api` processes (the CLI, as production runs it) serve the bench's
Temporal server and PostgreSQL. For each concurrency level, as many clients as the level
send requests back to back for a window, alternating between the two processes: first
intakes (`POST /v1/tickets`), then actions (`POST /v1/tickets/{id}/notes`, an internal
note: an update of the ticket) on the tickets the intakes opened.

Every answer is counted by status. A 503 must carry `Retry-After` (honest back-pressure);
any other 5xx is a failure. Afterwards every accepted intake (201 or 202) must be a
ticket in the read model, and every accepted note (200) an event: nothing accepted is
lost.

Each level also records the CPU each stage used (worker, Temporal server, API processes,
PostgreSQL, the bench's own clients) per answer, and how many of the machine's cores were
busy: a throughput that stays flat while latency grows is a saturated stage, and these
say which. With `--profile`, py-spy samples the worker through the middle level's intakes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from activities.database import Pool
from api.access import hash_key, new_key
from bench import profiling
from bench.infra import (
    BENCH_KEYS,
    READY_TIMEOUT_S,
    STOP_TIMEOUT_S,
    DevServer,
    busy_cpu_seconds,
    spawn_python,
)
from bench.report import Report, ms
from bench.throughput import POSTGRES, cpu_of, percentile
from workers.devstack import free_port, log_tail, stop_process

PART = "10 http"
PROCESSES = 2
# How long, after the load, accepted work may take to reach the store.
SETTLE_S = 120.0


@dataclass(frozen=True)
class LoadPlan:
    levels: tuple[int, ...]
    window_s: float


# The stages a request passes through, in the order the report names them.
STAGES = ("worker", "server", "api", POSTGRES, "driver")


@dataclass
class Level:
    kind: str
    concurrency: int
    window_s: float
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    # 503s without Retry-After, and transport errors (no answer at all).
    bare_503: int = 0
    errors: int = 0
    accepted: list[str] = field(default_factory=list)
    # CPU seconds each stage used from the first request to the last answer, that span,
    # and what the rest of the machine used meanwhile.
    cpu: dict[str, float] = field(default_factory=dict)
    elapsed_s: float = 0.0
    others_cpu: float = 0.0

    @property
    def answers(self) -> int:
        return sum(self.statuses.values())

    def cpu_ms_per_answer(self, stage: str) -> float:
        return 1000 * self.cpu[stage] / self.answers if self.answers else float("nan")

    def cores_busy(self) -> float:
        return sum(self.cpu.values()) / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def per_second(self) -> float:
        return sum(self.statuses.values()) / self.window_s

    @property
    def accepted_per_second(self) -> float:
        return len(self.accepted) / self.window_s

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500 and status != 503)


@dataclass
class LoadFigures:
    levels: list[Level]
    lost_intakes: int
    lost_notes: int
    # The worker's profile through the middle level's intakes (`--profile`).
    profile: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ApiProcess:
    process: asyncio.subprocess.Process
    url: str
    log_path: Path


@contextlib.asynccontextmanager
async def api_processes(
    server: DevServer, database_url: str, task_queue: str, work_dir: Path, keys: dict[str, str]
) -> AsyncIterator[list[ApiProcess]]:
    """`ticketflow api` twice, on free ports, with the bench's payload key."""
    entries = [
        {"name": f"bench-{role}", "role": role, "sha256": hash_key(key)}
        for role, key in keys.items()
    ]
    started: list[ApiProcess] = []
    try:
        for number in range(PROCESSES):
            port = free_port()
            env = {
                **os.environ,
                "TEMPORAL_ADDRESS": server.target,
                "TEMPORAL_NAMESPACE": server.namespace,
                "DATABASE_URL": database_url,
                "TICKETFLOW_TASK_QUEUE": task_queue,
                "TICKETFLOW_LOG_LEVEL": "WARNING",
                "TICKETFLOW_API__PORT": str(port),
                "TICKETFLOW_API__KEYS": json.dumps(entries),
                "TICKETFLOW_CODEC__KEYS": json.dumps(
                    {
                        key_id: base64.b64encode(key).decode()
                        for key_id, key in BENCH_KEYS.keys.items()
                    }
                ),
                "TICKETFLOW_CODEC__PRIMARY": BENCH_KEYS.primary,
            }
            log_path = work_dir / f"api-{number}.log"
            process = await spawn_python(["-m", "workers.cli", "api"], env, log_path)
            started.append(ApiProcess(process, f"http://127.0.0.1:{port}", log_path))
        async with httpx.AsyncClient() as probe:
            for api in started:
                await _ready(probe, api)
        yield started
    finally:
        for api in started:
            await stop_process(api.process, STOP_TIMEOUT_S)


async def _ready(probe: httpx.AsyncClient, api: ApiProcess) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if api.process.returncode is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the API did not start:\n{log_tail(api.log_path)}")
        with contextlib.suppress(httpx.TransportError):
            if (await probe.get(f"{api.url}/readyz")).status_code == 200:
                return
        await asyncio.sleep(0.2)


def _intake_body(number: int) -> dict[str, object]:
    return {
        "channel": "email",
        "customer_id": f"load-{number}",
        "tier": "standard",
        "subject": "会员怎么续费",
        "description": "请问会员到期后怎么续费?",
    }


async def _drive(
    level: Level,
    urls: Sequence[str],
    send: Callable[[httpx.AsyncClient, str, int], Awaitable[httpx.Response]],
    watch: Mapping[str, Sequence[int]],
) -> None:
    numbers = itertools.count()
    cpu_before = {stage: cpu_of(stage, pids) for stage, pids in watch.items()}
    machine_before = busy_cpu_seconds()
    began_at = time.monotonic()
    ends = time.monotonic() + level.window_s
    limits = httpx.Limits(max_connections=level.concurrency, keepalive_expiry=1.0)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60.0)) as http:

        async def client(offset: int) -> None:
            while time.monotonic() < ends:
                number = next(numbers)
                url = urls[(number + offset) % len(urls)]
                began = time.monotonic()
                try:
                    response = await send(http, url, number)
                except httpx.TransportError:
                    level.errors += 1
                    continue
                level.latencies_s.append(time.monotonic() - began)
                level.statuses[response.status_code] += 1
                if response.status_code == 503 and "retry-after" not in response.headers:
                    level.bare_503 += 1
                if response.status_code in (200, 201, 202):
                    level.accepted.append(_accepted_id(response))

        await asyncio.gather(*(client(offset) for offset in range(level.concurrency)))
    level.elapsed_s = time.monotonic() - began_at
    level.cpu = {stage: cpu_of(stage, pids) - cpu_before[stage] for stage, pids in watch.items()}
    level.others_cpu = max(0.0, busy_cpu_seconds() - machine_before - sum(level.cpu.values()))


def _accepted_id(response: httpx.Response) -> str:
    """The ticket an accepted intake opened, or the id of an accepted note."""
    body = response.json()
    return str(body.get("ticket_id") or body.get("id") or "")


async def measure(
    plan: LoadPlan,
    server: DevServer,
    database_url: str,
    pool: Pool,
    task_queue: str,
    work_dir: Path,
    say: Callable[[str], None],
    watch: Mapping[str, Sequence[int]],
    profile_dir: Path | None = None,
) -> LoadFigures:
    """`watch`: the bench's own processes by stage (the API processes are added here);
    `profile_dir`: where to keep the worker's profile, when one is asked for."""
    keys = {"backend": new_key(), "agent": new_key()}
    backend = {"Authorization": f"Bearer {keys['backend']}"}
    agent = {"Authorization": f"Bearer {keys['agent']}"}
    levels: list[Level] = []
    opened: list[str] = []
    notes: Counter[str] = Counter()
    run = uuid.uuid4().hex[:8]
    profile: list[str] = []
    async with api_processes(server, database_url, task_queue, work_dir, keys) as apis:
        urls = [api.url for api in apis]
        stages = {**watch, "api": [api.process.pid for api in apis]}
        for position, concurrency in enumerate(plan.levels):
            say(f"http: intakes at concurrency {concurrency} for {plan.window_s:.0f} s")
            intakes = Level("intake", concurrency, plan.window_s)

            async def intake(
                http: httpx.AsyncClient,
                url: str,
                number: int,
                key: str = f"load-{run}-{concurrency}",
            ) -> httpx.Response:
                return await http.post(
                    f"{url}/v1/tickets",
                    json=_intake_body(number),
                    headers={**backend, "Idempotency-Key": f"{key}-{number}"},
                )

            if profile_dir is not None and position == len(plan.levels) // 2:
                async with profiling.sampled(
                    stages["worker"][0],
                    plan.window_s,
                    profile_dir / "profile-http-intake.txt",
                    f"intakes at {concurrency}",
                    say,
                ) as profile:
                    await _drive(intakes, urls, intake, stages)
            else:
                await _drive(intakes, urls, intake, stages)
            levels.append(intakes)
            opened += [ticket for ticket in intakes.accepted if ticket]

        targets = opened[:500] or opened
        for concurrency in plan.levels:
            say(f"http: notes at concurrency {concurrency} for {plan.window_s:.0f} s")
            actions = Level("note", concurrency, plan.window_s)

            async def note(
                http: httpx.AsyncClient, url: str, number: int, key: str = f"{run}-{concurrency}"
            ) -> httpx.Response:
                ticket = targets[number % len(targets)]
                response = await http.post(
                    f"{url}/v1/tickets/{ticket}/notes",
                    json={"text": f"负载 {number}", "action_id": f"{key}-{number}"},
                    headers=agent,
                )
                if response.status_code == 200:
                    notes[ticket] += 1
                return response

            await _drive(actions, urls, note, stages)
            levels.append(actions)

    say("http: checking that everything accepted was kept")
    lost_intakes, lost_notes = await _lost(pool, set(opened), notes)
    return LoadFigures(levels, lost_intakes, lost_notes, profile)


async def _lost(pool: Pool, opened: set[str], notes: Counter[str]) -> tuple[int, int]:
    """Accepted intakes not in the read model, accepted notes not in the event store,
    once the store has had time to catch up."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        found = {
            row["ticket_id"]
            for row in await pool.fetch(
                "SELECT ticket_id FROM tickets WHERE ticket_id = ANY($1)", list(opened)
            )
        }
        counted = {
            row["ticket_id"]: row["n"]
            for row in await pool.fetch(
                "SELECT ticket_id, count(*) AS n FROM ticket_events"
                " WHERE type = 'note_added' AND ticket_id = ANY($1) GROUP BY ticket_id",
                list(notes),
            )
        }
        lost_notes = sum(max(0, n - counted.get(ticket, 0)) for ticket, n in notes.items())
        lost_intakes = len(opened - found)
        if (lost_intakes == 0 and lost_notes == 0) or time.monotonic() > deadline:
            return lost_intakes, lost_notes
        await asyncio.sleep(1.0)


def add_to(report: Report, f: LoadFigures) -> None:
    for level in f.levels:
        codes = ", ".join(f"{status}: {n:,}" for status, n in sorted(level.statuses.items()))
        report.add(
            PART,
            f"{level.kind}s at concurrency {level.concurrency}: answered/s, accepted/s; p50 / p99",
            f"{level.per_second:.1f}/s, {level.accepted_per_second:.1f}/s;"
            f" {ms(percentile(level.latencies_s, 50) * 1000)} /"
            f" {ms(percentile(level.latencies_s, 99) * 1000)} ({codes})",
            "no 5xx but 503 with Retry-After",
            level.server_errors == 0 and level.bare_503 == 0 and level.errors == 0,
        )
        stages = [stage for stage in STAGES if stage in level.cpu]
        report.add(
            PART,
            f"{level.kind}s at concurrency {level.concurrency}: CPU an answer, "
            + " / ".join(stages),
            " / ".join(ms(level.cpu_ms_per_answer(stage)) for stage in stages)
            + f" ({level.cores_busy():.2f} cores busy;"
            f" other programs {level.others_cpu / level.elapsed_s if level.elapsed_s else 0:.2f})",
        )
    report.add(
        PART,
        "accepted and not kept: intakes / notes",
        f"{f.lost_intakes} / {f.lost_notes}",
        "0 / 0",
        f.lost_intakes == 0 and f.lost_notes == 0,
    )
    if f.profile:
        report.facts["profile_http_intake"] = f.profile
