"""Part 4: many open tickets waiting on their timers, and what they cost at rest.

Tickets come in by e-mail (an asynchronous channel: first response within 24 h) on the
default, unscaled policy, so after intake each one waits on day-long timers and nothing
fires during the bench. A ticket is at rest once its opening effects are stored and it
has published its search attributes, which the workflow does in the same task that
starts its timer: so "all at rest" is the visibility count of running tickets with
TicketStatus = new reaching the number opened (asked once the read model holds them all:
a visibility count over thousands of workflows is not free for a SQLite server).

Intake is paced: at most `in_flight` tickets are opened and not yet at rest, so the
figure is the rate the system sustains, not how fast a backlog drains. (Unpaced, 5,000
tickets started in 35 s came to rest at the same 24 tickets/s on the reference machine:
the worker's 1,000-workflow cache overflows, but replaying a ticket this young is cheap.)
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from activities.database import Pool
from api.client import TicketClient, ticket_id_for
from bench.infra import cpu_percent, cpu_seconds, rss_mib
from bench.lifecycle import intake, open_ticket
from workflows.vocabulary import Channel

AT_REST_QUERY = (
    "WorkflowType = 'TicketWorkflow' AND ExecutionStatus = 'Running' AND TicketStatus = 'new'"
)


@dataclass
class AtRest:
    tickets: int
    start_seconds: float  # until every start call returned
    rest_seconds: float  # until every ticket was at rest
    worker_rss_before_mib: float
    worker_rss_peak_mib: float
    worker_rss_rest_mib: float
    server_rss_before_mib: float
    server_rss_rest_mib: float
    server_cpu_rest: float  # % of one core
    worker_cpu_rest: float
    window_seconds: float
    in_flight: int
    opening_cpu: tuple[float, float]  # worker, server CPU seconds while opening

    def opening_cpu_ms(self) -> tuple[float, float]:
        """CPU per ticket opened: worker, server."""
        worker, server = self.opening_cpu
        return 1000 * worker / self.tickets, 1000 * server / self.tickets

    @property
    def opened_per_second(self) -> float:
        return self.tickets / self.rest_seconds


async def open_and_rest(
    tickets: TicketClient,
    pool: Pool,
    count: int,
    key_prefix: str,
    worker_pid: int,
    server_pid: int,
    window_seconds: float,
    in_flight: int = 500,
    concurrency: int = 50,
    give_up_after: float | None = None,
) -> AtRest:
    """Progress is read from the read model (a ticket's row appears with its opening
    events, in its last activity) so that watching costs the Temporal server nothing; the
    visibility count then confirms every ticket finished the task that starts its timer.
    It gives up after `give_up_after` seconds: by default 900, or longer for more than
    4,500 tickets (5 a second; this machine opens about 20)."""
    give_up_after = give_up_after or max(900.0, count / 5)
    client = tickets.temporal
    worker_before, server_before = rss_mib(worker_pid), rss_mib(server_pid)
    peak = worker_before
    keys = [f"{key_prefix}-{number}" for number in range(count)]
    ticket_ids = [ticket_id_for(key) for key in keys]
    pending = iter(keys)
    opened = stored = 0
    already = (await client.count_workflows(AT_REST_QUERY)).count  # earlier parts' tickets
    cpu_before = cpu_seconds(worker_pid), cpu_seconds(server_pid)
    started = time.perf_counter()
    room = asyncio.Condition()

    def has_room() -> bool:
        return opened - stored < in_flight

    async def opener() -> None:
        nonlocal opened
        for key in pending:
            async with room:
                await room.wait_for(has_room)
                opened += 1
            await open_ticket(tickets, intake(key, Channel.EMAIL))

    openers = asyncio.gather(*(opener() for _ in range(concurrency)))
    start_seconds: float | None = None
    ticks = 0
    while True:
        await asyncio.sleep(0.25)
        peak = max(peak, rss_mib(worker_pid))
        if start_seconds is None and openers.done():
            openers.result()  # raises if an open failed
            start_seconds = time.perf_counter() - started
        ticks += 1
        if ticks % 4 and start_seconds is None:
            continue  # the count below reads every ticket's id: once a second is enough
        stored = await pool.fetchval(
            "SELECT count(*) FROM tickets WHERE ticket_id = ANY($1::text[])", ticket_ids
        )
        async with room:
            room.notify_all()
        if start_seconds is not None and stored >= count:
            resting = (await client.count_workflows(AT_REST_QUERY)).count - already
            if resting >= count:
                break
            await asyncio.sleep(0.75)
        if time.perf_counter() - started > give_up_after:
            raise TimeoutError(
                f"only {stored} of {count} tickets stored after {give_up_after:.0f} s"
            )
    rest_seconds = time.perf_counter() - started
    opening_cpu = (
        cpu_seconds(worker_pid) - cpu_before[0],
        cpu_seconds(server_pid) - cpu_before[1],
    )
    server_cpu, worker_cpu = await cpu_percent([server_pid, worker_pid], window_seconds)
    worker_rest = rss_mib(worker_pid)
    return AtRest(
        tickets=count,
        start_seconds=start_seconds,
        rest_seconds=rest_seconds,
        worker_rss_before_mib=worker_before,
        worker_rss_peak_mib=max(peak, worker_rest),
        worker_rss_rest_mib=worker_rest,
        server_rss_before_mib=server_before,
        server_rss_rest_mib=rss_mib(server_pid),
        server_cpu_rest=server_cpu,
        worker_cpu_rest=worker_cpu,
        window_seconds=window_seconds,
        in_flight=in_flight,
        opening_cpu=opening_cpu,
    )
