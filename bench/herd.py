"""Part 9: the 10:00 herd, beside its twin (issue 25).

N tickets are opened and dispatched to a department that never answers, all before one
instant that the tickets' policy names as the daily progress check (`progress_check_at`,
"10:00" here being a few minutes after the tickets are open). At that instant every
ticket wakes, records `progress_reminded` and queues a reminder, which the worker's relay
delivers to a real signed-webhook receiver in this process.

Beside it, the engine's own floor: N `HerdTwinWorkflow`s (bench/herd_twin.py) sleeping
until an instant of their own, then writing one row each, on the same server, worker
process and database, run just before the herd so the two never share the machine.

While the herd runs, three people who are not part of it act at instant + 30 s: an agent
adds a note to another ticket (an update: how long it waits), a customer replies to
another ticket (a signal: until the words are recorded), and a new customer writes in by
e-mail (until the acknowledgement reaches the receiver). Their figures say whether
anything else waits for a herd.

With `--profile`, py-spy samples the worker through each wave, the twin's and the herd's,
from the instant for as long as a wave of that size lasts here, so the two profiles say
what a ticket's wakeup costs that a bare timer does not.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType, TaskQueueKind, TimeoutType
from temporalio.client import Client

from activities.database import Pool
from api.client import TicketClient
from bench import profiling
from bench.herd_twin import TABLE, HerdTwinInput
from bench.lifecycle import AGENT, DEPARTMENT, intake, open_ticket
from bench.report import Report, ms
from bench.throughput import percentile
from workers.receiver import Inbox
from workflows.contracts import AddNote, CustomerReply, Dispatch, MessageKind
from workflows.policy import ServicePolicy
from workflows.vocabulary import Channel, CustomerReplyKind

# Tickets opened (intake and dispatch) at once while the herd gathers, and how many
# open first to measure the pace the instant is set by (the second half of them).
OPENING_CONCURRENCY = 40
WARM_UP = 200
# The opening is planned at this share of the warm-up's pace.
OPENING_SLACK = 0.7
TWIN_START_CONCURRENCY = 50
# The instant is set this far past the time the opening is expected to end.
MARGIN = timedelta(seconds=20)
# How long after the instant the bystanders act.
BYSTANDERS_AFTER = timedelta(seconds=30)
# How long to wait for the last reminder before giving up on the figure.
PATIENCE = timedelta(minutes=30)
# Histories read for the workflow-task schedule-to-start latency after the instant.
SAMPLED_HISTORIES = 200

PART = "9 herd"
# Targets of issue 25, against the twin.
LAST_RATIO_TARGET = 1.1
P50_RATIO_TARGET = 1.1
RECEIVED_WITHIN_TARGET_S = 10.0


@dataclass(frozen=True)
class HerdPlan:
    tickets: int
    twins: int
    # Sample this worker process with py-spy through each wave, into this directory.
    profile_pid: int | None = None
    profile_dir: Path | None = None


@dataclass
class Wave:
    """Seconds after the instant at which each member finished (sorted)."""

    after_s: list[float] = field(default_factory=list)
    expected: int = 0

    def q(self, quantile: float) -> float:
        return percentile(self.after_s, quantile * 100) if self.after_s else float("nan")

    @property
    def last(self) -> float:
        return self.after_s[-1] if self.after_s else float("nan")


@dataclass
class HerdFigures:
    tickets: int
    twins: int
    opening_s: float
    twin_starting_s: float
    twin: Wave
    recorded: Wave
    received: Wave
    # Per reminder: received minus recorded, seconds.
    delivery_lag_s: list[float]
    task_wait_s: list[float]
    # Of the sampled tickets, those whose woken workflow task timed out on the worker's
    # sticky queue and was scheduled again on the shared one (a rebuild, behind new work).
    sticky_timeouts: int
    note_wait_s: float
    reply_recorded_s: float
    acknowledged_s: float
    # Each bystander's history from the moment it acted: "+s EVENT (detail)" lines, by
    # "note", "reply" and "newcomer", which say where its seconds went.
    timelines: dict[str, list[str]] = field(default_factory=dict)
    # With --profile: each wave's summary (bench/profiling.py), by "twin" and "herd".
    profiles: dict[str, list[str]] = field(default_factory=dict)


def _instant_after(seconds: float) -> datetime:
    """A whole second at least `seconds` from now, in UTC."""
    at = datetime.now(UTC) + timedelta(seconds=seconds)
    return at.replace(microsecond=0) + timedelta(seconds=1)


async def _pooled(count: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> None:
    numbers = iter(range(count))

    async def lane() -> None:
        for number in numbers:
            await one(number)

    await asyncio.gather(*(lane() for _ in range(concurrency)))


async def _until(probe: Callable[[], Awaitable[bool]], deadline: float, every: float = 1.0) -> bool:
    """Poll `probe` until it holds or the monotonic `deadline` passes; whether it held."""
    while time.monotonic() < deadline:
        if await probe():
            return True
        await asyncio.sleep(every)
    return await probe()


Sampler = Callable[[str, datetime], Coroutine[Any, Any, list[str]]]


async def run_twin(
    client: Client,
    pool: Pool,
    twin_queue: str,
    count: int,
    token: str,
    sample: Sampler | None = None,
) -> tuple[Wave, list[str]]:
    await pool.execute(TABLE)
    await pool.execute("TRUNCATE bench_herd_twin")
    # Starts run at about 145/s here: leave time for all of them, then some.
    instant = _instant_after(count / 100 + MARGIN.total_seconds())

    async def start(number: int) -> None:
        await client.start_workflow(
            "HerdTwinWorkflow",
            HerdTwinInput(instant=instant),
            id=f"herd-twin-{token}-{number}",
            task_queue=twin_queue,
        )

    await _pooled(count, TWIN_START_CONCURRENCY, start)
    deadline = time.monotonic() + (instant - datetime.now(UTC) + PATIENCE).total_seconds()
    sampling = asyncio.create_task(sample("twin", instant)) if sample else None

    async def all_written() -> bool:
        return bool(await pool.fetchval("SELECT count(*) FROM bench_herd_twin") >= count)

    await _until(all_written, deadline)
    rows = await pool.fetch("SELECT recorded_at FROM bench_herd_twin ORDER BY recorded_at")
    wave = Wave(sorted((r["recorded_at"] - instant).total_seconds() for r in rows), count)
    return wave, (await sampling if sampling else [])


def _sampler(plan: HerdPlan, say: Callable[[str], None]) -> Sampler | None:
    """py-spy on the worker from an instant for as long as the wave is expected to last
    (the twin's own pace of about 50 wakeups a second here, and some), or None."""
    pid, directory = plan.profile_pid, plan.profile_dir
    if pid is None or directory is None:
        return None

    async def sample(name: str, instant: datetime) -> list[str]:
        await asyncio.sleep(max(0.0, (instant - datetime.now(UTC)).total_seconds()))
        output = directory / f"profile-herd-{name}.txt"
        wave = plan.twins if name == "twin" else plan.tickets
        async with profiling.sampled(
            pid, wave / 40 + 10, output, f"through the {name}'s wave", say
        ) as summary:
            pass  # the wave runs on its own: py-spy samples it for as long as one lasts
        return summary

    return sample


async def measure(
    plan: HerdPlan,
    client: Client,
    pool: Pool,
    inbox: Inbox,
    ticket_queue: str,
    twin_queue: str,
    say: Callable[[str], None],
) -> HerdFigures:
    token = secrets.token_hex(3)
    say(f"herd twin: {plan.twins:,} bare workflows waking at one instant")
    began = time.monotonic()
    sample = _sampler(plan, say)
    twin, twin_profile = await run_twin(client, pool, twin_queue, plan.twins, token, sample)
    twin_s = time.monotonic() - began

    # The opening rate decides the instant: measured on a few tickets first.
    warm = TicketClient(client, task_queue=ticket_queue, policy=ServicePolicy())
    # Timed on the second half only: the first half's pace, the worker's and the
    # server's first minutes, was 2.3 times slower than the opening's (7.6 against
    # 17.2 a second), which left the opened herd idle for a quarter of an hour.
    await _pooled(WARM_UP // 2, OPENING_CONCURRENCY, _opener(warm, f"{token}-cold"))
    began = time.monotonic()
    await _pooled(WARM_UP // 2, OPENING_CONCURRENCY, _opener(warm, f"{token}-warm"))
    rate = (WARM_UP // 2) / (time.monotonic() - began)
    instant = _instant_after(plan.tickets / (rate * OPENING_SLACK) + 2 + MARGIN.total_seconds())
    policy = ServicePolicy(time_zone="UTC", progress_check_at=instant.time())
    tickets = TicketClient(client, task_queue=ticket_queue, policy=policy)
    say(
        f"herd: opening {plan.tickets:,} tickets at about {rate:.1f}/s, all checked at "
        f"{instant:%H:%M:%S} UTC"
    )
    opened: list[str] = []
    began = time.monotonic()
    await _pooled(plan.tickets, OPENING_CONCURRENCY, _opener(tickets, token, opened))
    opening_s = time.monotonic() - began
    bystanders: list[str] = []
    await _pooled(2, 2, _opener(tickets, f"{token}-by", bystanders))
    if datetime.now(UTC) >= instant:
        raise RuntimeError(
            f"opening took {opening_s:.0f} s and ran past the instant: the herd did not "
            "gather (is something else running on this machine?)"
        )
    say(f"herd: {len(opened):,} tickets open in {opening_s:.0f} s; waiting for the instant")
    acting = asyncio.create_task(_bystanders(tickets, pool, inbox, bystanders, instant, token))
    sampling = asyncio.create_task(sample("herd", instant)) if sample else None
    deadline = time.monotonic() + (instant - datetime.now(UTC) + PATIENCE).total_seconds()
    recorded_sql = (
        "SELECT ticket_id, recorded_at FROM ticket_events"
        " WHERE type = 'progress_reminded' AND ticket_id = ANY($1)"
    )

    async def all_recorded() -> bool:
        count = await pool.fetchval(
            "SELECT count(*) FROM ticket_events"
            " WHERE type = 'progress_reminded' AND ticket_id = ANY($1)",
            opened,
        )
        return bool(count >= len(opened))

    def reminders() -> dict[str, datetime]:
        return {
            r.ticket_id: r.received_at
            for r in list(inbox.received.values())
            if r.kind == "progress_reminder" and r.ticket_id in wanted
        }

    wanted = set(opened)

    async def all_received() -> bool:
        return len(reminders()) >= len(opened)

    await _until(all_recorded, deadline)
    await _until(all_received, deadline)
    (note_wait, reply_recorded, acknowledged), acted_at, newcomer = await acting
    rows = await pool.fetch(recorded_sql, opened)
    recorded_at = {r["ticket_id"]: r["recorded_at"] for r in rows}
    received_at = reminders()
    waits, sticky_timeouts = await _task_waits(client, opened[:SAMPLED_HISTORIES], instant)
    lags = sorted(
        (received_at[t] - recorded_at[t]).total_seconds() for t in received_at if t in recorded_at
    )
    return HerdFigures(
        tickets=plan.tickets,
        twins=plan.twins,
        opening_s=opening_s,
        twin_starting_s=twin_s,
        twin=twin,
        recorded=Wave(
            sorted((at - instant).total_seconds() for at in recorded_at.values()), len(opened)
        ),
        received=Wave(
            sorted((at - instant).total_seconds() for at in received_at.values()), len(opened)
        ),
        delivery_lag_s=lags,
        task_wait_s=waits,
        sticky_timeouts=sticky_timeouts,
        note_wait_s=note_wait,
        reply_recorded_s=reply_recorded,
        acknowledged_s=acknowledged,
        timelines={
            name: await _timeline(client, ticket_id, acted_at)
            for name, ticket_id in (
                ("note", bystanders[0]),
                ("reply", bystanders[1]),
                ("newcomer", newcomer),
            )
        },
        profiles={"twin": twin_profile, "herd": await sampling if sampling else []},
    )


def _opener(
    tickets: TicketClient, prefix: str, opened: list[str] | None = None
) -> Callable[[int], Awaitable[None]]:
    """Open a ticket by e-mail (its first reply is a day away) and dispatch it to the
    department, which stays silent."""

    async def one(number: int) -> None:
        ticket = await open_ticket(tickets, intake(f"herd-{prefix}-{number}", Channel.EMAIL))
        await tickets.act(
            ticket.ticket_id, Dispatch(actor=AGENT, departments=[DEPARTMENT], note="请排查")
        )
        if opened is not None:
            opened.append(ticket.ticket_id)

    return one


async def _bystanders(
    tickets: TicketClient,
    pool: Pool,
    inbox: Inbox,
    bystanders: Sequence[str],
    instant: datetime,
    token: str,
) -> tuple[tuple[float, float, float], datetime, str]:
    """At instant + 30 s: an agent's note on one ticket (seconds until the update
    returns), a customer's reply to another (until its words are recorded), and a new
    customer's e-mail (until the acknowledgement is received). Also when they acted, and
    the newcomer's ticket id."""
    await asyncio.sleep((instant + BYSTANDERS_AFTER - datetime.now(UTC)).total_seconds())
    acted_at = datetime.now(UTC)
    noted, replied = bystanders
    newcomer: list[str] = []

    async def note() -> float:
        began = time.monotonic()
        await tickets.act(noted, AddNote(actor=AGENT, text="客户来电催问"))
        return time.monotonic() - began

    async def reply() -> float:
        began = time.monotonic()
        reply_id = uuid.uuid4().hex
        await tickets.customer_reply(
            replied,
            CustomerReply(reply_id=reply_id, kind=CustomerReplyKind.MESSAGE, text="还没好吗"),
        )

        async def recorded() -> bool:
            return bool(
                await pool.fetchval(
                    "SELECT 1 FROM ticket_events"
                    " WHERE ticket_id = $1 AND type = 'customer_replied'",
                    replied,
                )
            )

        await _until(recorded, began + PATIENCE.total_seconds(), every=0.05)
        return time.monotonic() - began

    async def write_in() -> float:
        began = time.monotonic()
        # As the API's intake: started raised, read back, then settled.
        ticket = await tickets.open(intake(f"herd-{token}-newcomer", Channel.EMAIL))
        newcomer.append(ticket.ticket_id)
        await tickets.read_back(ticket, PATIENCE)
        kind = f"customer_message:{MessageKind.ACKNOWLEDGEMENT}"

        async def received() -> bool:
            return any(
                r.ticket_id == ticket.ticket_id and r.kind == kind
                for r in list(inbox.received.values())
            )

        await _until(received, began + PATIENCE.total_seconds(), every=0.05)
        return time.monotonic() - began

    noting, replying, writing = await asyncio.gather(note(), reply(), write_in())
    return (noting, replying, writing), acted_at, newcomer[0]


# Event types a timeline leaves out: they say nothing about waiting.
_QUIET = frozenset(
    {EventType.EVENT_TYPE_MARKER_RECORDED, EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES}
)


async def _timeline(client: Client, ticket_id: str, since: datetime) -> list[str]:
    """A ticket's history from `since`: one line per event, seconds after `since`, with
    the task queue a workflow or activity task was scheduled on, a priority set, and a
    timeout's type."""
    history = await client.get_workflow_handle(ticket_id).fetch_history()
    lines: list[str] = []
    for event in history.events:
        at = event.event_time.ToDatetime(tzinfo=UTC)
        if at < since or event.event_type in _QUIET:
            continue
        detail = ""
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            queue = event.workflow_task_scheduled_event_attributes.task_queue
            sticky = queue.kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY
            detail = f"{queue.name} ({'sticky' if sticky else 'shared'})"
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            detail = f"{attributes.activity_type.name} on {attributes.task_queue.name}"
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED:
            options = event.workflow_execution_options_updated_event_attributes
            detail = f"priority {options.priority.priority_key or 'unset'}"
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            detail = TimeoutType.Name(event.workflow_task_timed_out_event_attributes.timeout_type)
        name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        lines.append(f"+{(at - since).total_seconds():6.3f} s {name} {detail}".rstrip())
    return lines


async def _task_waits(
    client: Client, ticket_ids: Sequence[str], instant: datetime
) -> tuple[list[float], int]:
    """Schedule-to-start of the workflow task each sampled ticket's check timer woke, and
    how many of those tickets had a workflow task time out after the instant."""
    waits: list[float] = []
    timed_out = 0
    for ticket_id in ticket_ids:
        history = await client.get_workflow_handle(ticket_id).fetch_history()
        scheduled: datetime | None = None
        for event in history.events:
            at = event.event_time.ToDatetime(tzinfo=UTC)
            if at < instant:
                continue
            if (
                event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT
                and event.workflow_task_timed_out_event_attributes.timeout_type
                == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START
            ):
                timed_out += 1
                break
        for event in history.events:
            at = event.event_time.ToDatetime(tzinfo=UTC)
            if at < instant:
                continue
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED and not scheduled:
                scheduled = at
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and scheduled:
                waits.append((at - scheduled).total_seconds())
                break
    return sorted(waits), timed_out


def add_to(report: Report, f: HerdFigures) -> None:
    def seconds(value: float) -> str:
        return f"{value:.1f} s"

    twin, recorded, received = f.twin, f.recorded, f.received
    report.facts["herd"] = {
        "seconds_after_the_instant": {
            "twin": twin.after_s,
            "recorded": recorded.after_s,
            "received": received.after_s,
        },
        "delivery_lag_s": f.delivery_lag_s,
        "task_wait_s": f.task_wait_s,
        "sticky_timeouts": f.sticky_timeouts,
        "profiles": f.profiles,
        "timelines": f.timelines,
    }
    report.add(
        PART,
        f"herd twin: {f.twins:,} bare workflows, instant → row written (p50 / p99 / last)",
        f"{seconds(twin.q(0.5))} / {seconds(twin.q(0.99))} / {seconds(twin.last)}"
        f" ({len(twin.after_s):,} of {twin.expected:,})",
        "the floor",
    )
    report.add(
        PART,
        f"herd: {f.tickets:,} tickets, 10:00 → reminder recorded (p50 / p99 / last)",
        f"{seconds(recorded.q(0.5))} / {seconds(recorded.q(0.99))} / {seconds(recorded.last)}"
        f" ({len(recorded.after_s):,} of {recorded.expected:,})",
        f"last ≤ {LAST_RATIO_TARGET} × twin's, p50 ≤ {P50_RATIO_TARGET} × twin's",
        met=(
            len(recorded.after_s) == recorded.expected
            and recorded.last <= LAST_RATIO_TARGET * twin.last
            and recorded.q(0.5) <= P50_RATIO_TARGET * twin.q(0.5)
        ),
    )
    report.add(
        PART,
        "herd: 10:00 → reminder received (p50 / p99 / last)",
        f"{seconds(received.q(0.5))} / {seconds(received.q(0.99))} / {seconds(received.last)}"
        f" ({len(received.after_s):,} of {received.expected:,})",
        "",
    )
    worst = max(f.delivery_lag_s, default=float("nan"))
    report.add(
        PART,
        "herd: reminder recorded → received (p50 / p99 / max)",
        f"{ms(percentile(f.delivery_lag_s, 50) * 1000)} / "
        f"{ms(percentile(f.delivery_lag_s, 99) * 1000)} / {ms(worst * 1000)}",
        f"every one ≤ {RECEIVED_WITHIN_TARGET_S:.0f} s",
        met=bool(f.delivery_lag_s) and worst <= RECEIVED_WITHIN_TARGET_S,
    )
    report.add(
        PART,
        "herd: workflow task schedule-to-start after 10:00, sampled (p50 / p99 / max)",
        f"{seconds(percentile(f.task_wait_s, 50))} / {seconds(percentile(f.task_wait_s, 99))}"
        f" / {seconds(max(f.task_wait_s, default=float('nan')))}; a task timed out on the"
        f" sticky queue in {f.sticky_timeouts} of {SAMPLED_HISTORIES}",
        "",
    )
    report.add(
        PART,
        "at 10:00:30, another ticket: agent's note (update) / customer's reply recorded",
        f"{seconds(f.note_wait_s)} / {seconds(f.reply_recorded_s)}",
        "1 s / 2 s",
        met=f.note_wait_s <= 1.0 and f.reply_recorded_s <= 2.0,
    )
    report.add(
        PART,
        "at 10:00:30, a new e-mail: intake → acknowledgement received",
        seconds(f.acknowledged_s),
        "2 s",
        met=f.acknowledged_s <= 2.0,
    )
    for name, lines in f.timelines.items():
        report.note(f"Part 9, the {name}'s history from 10:00:30: " + "; ".join(lines))
    report.note(
        f"Part 9 opened its {f.tickets:,} tickets (intake + dispatch, {OPENING_CONCURRENCY} at"
        f" a time) in {f.opening_s:.0f} s; the twin took {f.twin_starting_s:.0f} s from its"
        " first start to its last row."
    )
