"""Parts 1 and 2: lifecycles per second and update round trips, ticket against twin.

`concurrency` drivers each run lifecycles back to back (every action sent as soon as the
previous one was accepted) until the window closes; a warm-up window at the same
concurrency comes first and is not counted. Lifecycles/s is lifecycles completed over
the time from the window's start to the last completion.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from bench.infra import busy_cpu_seconds, cpu_seconds
from bench.lifecycle import Timings

POSTGRES = "postgres"  # counted with its backend processes

Lifecycle = Callable[[int, Timings | None], Awaitable[object]]


@dataclass
class Throughput:
    concurrency: int
    lifecycles: int
    seconds: float
    updates: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    # CPU seconds each watched process used during the window, and everything else on
    # the machine (another workload skews the figures: the report says how much ran).
    cpu: dict[str, float] = field(default_factory=dict)
    others_cpu: float = 0.0

    @property
    def per_second(self) -> float:
        return self.lifecycles / self.seconds if self.seconds > 0 else 0.0

    def update_ms(self, q: float) -> float:
        return percentile(self.updates, q) * 1000

    def cpu_ms_per_lifecycle(self, process: str) -> float:
        return 1000 * self.cpu[process] / self.lifecycles if self.lifecycles else float("nan")

    def cores_busy(self) -> float:
        return sum(self.cpu.values()) / self.seconds if self.seconds else 0.0

    def other_cores_busy(self) -> float:
        return self.others_cpu / self.seconds if self.seconds else 0.0


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def cpu_of(name: str, pids: Sequence[int]) -> float:
    """CPU seconds the watched processes called `name` have used so far."""
    return sum(cpu_seconds(pid, name == POSTGRES) for pid in pids)


async def _drive(
    lifecycle: Lifecycle,
    concurrency: int,
    seconds: float,
    numbers: itertools.count[int],
    timings: Timings | None,
    watch: Mapping[str, Sequence[int]],
) -> Throughput:
    result = Throughput(concurrency=concurrency, lifecycles=0, seconds=0.0)
    cpu_before = {name: cpu_of(name, pids) for name, pids in watch.items()}
    machine_before = busy_cpu_seconds()
    started = time.perf_counter()
    deadline = started + seconds
    last_done = started

    async def driver() -> None:
        nonlocal last_done
        while time.perf_counter() < deadline:
            try:
                await lifecycle(next(numbers), timings)
            except Exception as error:
                result.errors += 1
                result.first_error = result.first_error or f"{type(error).__name__}: {error}"
                if result.errors > 10:
                    raise
                continue
            result.lifecycles += 1
            last_done = time.perf_counter()

    await asyncio.gather(*(driver() for _ in range(concurrency)))
    result.seconds = last_done - started
    result.cpu = {name: cpu_of(name, pids) - cpu_before[name] for name, pids in watch.items()}
    result.others_cpu = max(0.0, busy_cpu_seconds() - machine_before - sum(result.cpu.values()))
    if timings is not None:
        result.updates = timings.updates
    return result


async def measure(
    lifecycle: Lifecycle,
    concurrency: int,
    seconds: float,
    warmup_seconds: float,
    numbers: itertools.count[int],
    watch: Mapping[str, Sequence[int]],
) -> Throughput:
    """`watch`: processes (name → pids, e.g. every worker process) whose CPU time the
    window accounts for, summed under each name."""
    if warmup_seconds > 0:
        await _drive(lifecycle, concurrency, warmup_seconds, numbers, None, {})
    return await _drive(lifecycle, concurrency, seconds, numbers, Timings(), watch)
