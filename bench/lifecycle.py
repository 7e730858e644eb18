"""Driving lifecycles: the real ticket through `TicketClient`, the twin through its handle.

A script is the list of actions after intake. The standard one is the issue's
intake → respond → classify → dispatch → progress (work order done) → resolve → solved
(closed): five updates and one signal. `calibrate` drives one ticket at a person's pace
(each action after the ticket has come to rest), reads its history, and gives the twin
the activities the ticket ran at start and after each action, so the twin's shape is
measured from the ticket of this very checkout, not written down once and left to age.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus

from activities.database import Pool
from activities.event_store import EventStore
from activities.outbox import CUSTOMER_MESSAGE_PREFIX, Outbox
from api.client import OpenedTicket, TicketClient
from bench.twin import APPEND, TwinPlan, TwinStep
from bench.twin_workflow import TwinWorkflow
from workflows.classification import classify_intake
from workflows.contracts import (
    Classify,
    CustomerMessage,
    CustomerReply,
    Dispatch,
    EventBatch,
    Handoff,
    Intake,
    PostProgress,
    Resolve,
    Respond,
    TicketAction,
)
from workflows.policy import ServicePolicy
from workflows.primitives import Actor, ContextSnapshot
from workflows.vocabulary import Channel, CustomerReplyKind, Priority, ResultKind, Role, Tier

AGENT = Actor(id="agent-7", role=Role.AGENT)
TECH = Actor(id="tech-oncall-2", role=Role.DEPARTMENT)
DEPARTMENT = "tech"

StepName = Literal[
    "respond", "classify", "dispatch", "progress_done", "resolve", "solved", "not_solved"
]
SIGNALS: frozenset[StepName] = frozenset({"solved", "not_solved"})

STANDARD: tuple[StepName, ...] = (
    "respond",
    "classify",
    "dispatch",
    "progress_done",
    "resolve",
    "solved",
)
REOPENED: tuple[StepName, ...] = (
    "respond",
    "classify",
    "dispatch",
    "progress_done",
    "resolve",
    "not_solved",
    "resolve",
    "solved",
)

Settle = Callable[[str], Awaitable[None]]


def intake(key: str, channel: Channel = Channel.APP_CHAT) -> Intake:
    return Intake(
        idempotency_key=key,
        channel=channel,
        customer_id=f"cust-{key[-12:]}",
        tier=Tier.STANDARD,
        subject="支付失败",
        description="付款时一直报错, 无法支付",
        context=ContextSnapshot(
            device_model="Pixel 8", os_version="Android 15", app_version="7.3.0"
        ),
    )


def ticket_action(step: StepName, ticket_intake: Intake) -> TicketAction:
    match step:
        case "respond":
            return Respond(actor=AGENT, message="正在为您查看")
        case "classify":
            guess = classify_intake(ticket_intake)
            priority = Priority.C if guess.priority is not Priority.C else Priority.B
            return Classify(
                actor=AGENT,
                category=guess.category,
                topic=guess.topic,
                priority=priority,
                reason="agent reviewed the impact",
            )
        case "dispatch":
            return Dispatch(actor=AGENT, departments=[DEPARTMENT], note="支付网关报错, 请排查")
        case "progress_done":
            return PostProgress(
                actor=TECH, department=DEPARTMENT, note="网关证书已更新", work_order_done=True
            )
        case "resolve":
            return Resolve(
                actor=AGENT,
                result_kind=ResultKind.TECHNICAL,
                message="The payment page works again; please retry your order.",
                root_cause="產品缺陷-支付流程",
            )
        case _:
            raise ValueError(f"{step} is a customer signal, not an action")


@dataclass
class Timings:
    """Update round trips (client call to accepted result), seconds."""

    updates: list[float] = field(default_factory=list)


async def open_ticket(tickets: TicketClient, ticket_intake: Intake) -> OpenedTicket:
    """Open a ticket as `POST /v1/tickets` does: started at the person-waiting priority and
    settled to quiet. The API reads the view between the two (`TicketClient.read_back`);
    the bench does not, to measure the engine rather than a read, so the settle may come
    before the ticket's first task."""
    opened = await tickets.open(ticket_intake)
    if opened.created:
        await tickets.settle(opened.ticket_id)
    return opened


async def ticket_lifecycle(
    tickets: TicketClient,
    key: str,
    steps: Sequence[StepName] = STANDARD,
    timings: Timings | None = None,
    settle: Settle | None = None,
    channel: Channel = Channel.APP_CHAT,
) -> str:
    """Open a ticket, act on it step by step, and wait for its closed outcome."""
    ticket_intake = intake(key, channel)
    ticket_id = (await open_ticket(tickets, ticket_intake)).ticket_id
    if settle:
        await settle(ticket_id)
    for index, step in enumerate(steps):
        await ticket_step(tickets, ticket_id, ticket_intake, step, index, timings)
        if settle:
            await settle(ticket_id)
    await tickets.handle(ticket_id).result()
    return ticket_id


async def ticket_step(
    tickets: TicketClient,
    ticket_id: str,
    ticket_intake: Intake,
    step: StepName,
    index: int,
    timings: Timings | None = None,
) -> None:
    if step in SIGNALS:
        kind = CustomerReplyKind.SOLVED if step == "solved" else CustomerReplyKind.NOT_SOLVED
        await tickets.customer_reply(ticket_id, CustomerReply(reply_id=f"r{index}", kind=kind))
        return
    started = time.perf_counter()
    await tickets.act(ticket_id, ticket_action(step, ticket_intake))
    if timings is not None:
        timings.updates.append(time.perf_counter() - started)


async def twin_lifecycle(
    client: Client,
    task_queue: str,
    plan: TwinPlan,
    workflow_id: str,
    steps: Sequence[StepName] = STANDARD,
    timings: Timings | None = None,
    settle: Settle | None = None,
) -> str:
    handle = await client.start_workflow(
        TwinWorkflow.run, plan, id=workflow_id, task_queue=task_queue
    )
    if settle:
        await settle(workflow_id)
    for step in steps:
        if step in SIGNALS:
            await handle.signal(TwinWorkflow.notify, step)
        else:
            started = time.perf_counter()
            await handle.execute_update(TwinWorkflow.act, step)
            if timings is not None:
                timings.updates.append(time.perf_counter() - started)
        if settle:
            await settle(workflow_id)
    await handle.result()
    return workflow_id


# ---------------------------------------------------------------- history


def event_name(event: HistoryEvent) -> str:
    return EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")


@dataclass
class RunStats:
    run_id: str
    events: int
    bytes: int
    counts: Counter[str]


async def chain_stats(client: Client, workflow_id: str) -> list[RunStats]:
    """Every run of a workflow id from the first, following continue-as-new."""
    latest = await client.get_workflow_handle(workflow_id).describe()
    run_id = latest.raw_description.workflow_execution_info.first_run_id or latest.run_id
    runs: list[RunStats] = []
    while True:
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        history = await handle.fetch_history()
        info = (await handle.describe()).raw_description.workflow_execution_info
        size = info.history_size_bytes or sum(event.ByteSize() for event in history.events)
        counts = Counter(event_name(event) for event in history.events)
        runs.append(RunStats(run_id, len(history.events), size, counts))
        last = history.events[-1]
        if last.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            return runs
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id


def idle_waiter(client: Client, timeout: float = 30.0) -> Settle:
    """Returns once the workflow has no activity or workflow task pending (or ended)."""

    async def settle(workflow_id: str) -> None:
        handle = client.get_workflow_handle(workflow_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            description = await handle.describe()
            raw = description.raw_description
            if description.status != WorkflowExecutionStatus.RUNNING:
                return
            if not raw.pending_activities and not raw.HasField("pending_workflow_task"):
                return
            await asyncio.sleep(0.02)
        raise TimeoutError(f"{workflow_id} did not come to rest in {timeout:.0f} s")

    return settle


APPENDS = frozenset({"append_events", APPEND})


@dataclass(frozen=True)
class Segment:
    """Activities a step ran when it ran alone: effects, and appends of its events."""

    effects: int
    appends: int


@dataclass
class Calibration:
    """The ticket's shape as its history shows it, and the twin built from it."""

    ticket_id: str
    twin_id: str
    plan: TwinPlan
    ticket_segments: list[Segment]
    twin_segments: list[Segment]
    ticket_counts: Counter[str]
    twin_counts: Counter[str]
    append_batches: list[EventBatch]

    @property
    def shapes_match(self) -> bool:
        return self.ticket_segments == self.twin_segments


def _step(segment: Segment) -> TwinStep:
    # At rest, a step's events go in one append; anything more would be an effect.
    return TwinStep(
        effects=segment.effects + max(0, segment.appends - 1), append=segment.appends > 0
    )


async def _segments(
    client: Client,
    run: Callable[[Settle], Awaitable[str]],
) -> tuple[str, list[Segment], list[HistoryEvent]]:
    """Drive a lifecycle at rest between steps; the activities of each step."""
    settle_idle = idle_waiter(client)
    bounds: list[int] = []

    async def settle(workflow_id: str) -> None:
        await settle_idle(workflow_id)
        info = (
            await client.get_workflow_handle(workflow_id).describe()
        ).raw_description.workflow_execution_info
        bounds.append(info.history_length)

    workflow_id = await run(settle)
    events = list((await client.get_workflow_handle(workflow_id).fetch_history()).events)
    bounds[-1] = len(events)  # the last settle may precede the closing events
    segments: list[Segment] = []
    start = 0
    for end in bounds:
        names = activities_run(events[start:end])
        appends = sum(1 for name in names if name in APPENDS)
        segments.append(Segment(effects=len(names) - appends, appends=appends))
        start = end
    return workflow_id, segments, events


def activities_run(events: Sequence[HistoryEvent]) -> list[str]:
    """The activity types these events scheduled (the ticket's local activities, its
    claim and classification, are work inside a workflow task, not a step's effects)."""
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def stored_batches(pool: Pool, ticket_id: str) -> list[EventBatch]:
    """The ticket's appends as they reached the event store: its events grouped by the
    transaction that wrote them, with the messages and hand-offs queued beside them.
    (A local activity's input is not in the history, so the store is what tells.)"""
    events = await EventStore(pool, Outbox(pool, ServicePolicy())).events(ticket_id)
    written = await pool.fetch(
        "SELECT seq, transaction_id::text AS tx FROM ticket_events WHERE ticket_id = $1",
        ticket_id,
    )
    transaction = {row["seq"]: row["tx"] for row in written}
    batches: dict[str, EventBatch] = {}
    for event in events:
        tx = transaction[event.seq]
        batches.setdefault(tx, EventBatch(ticket_id=ticket_id, events=[])).events.append(event)
    rows = await pool.fetch(
        "SELECT kind, payload FROM outbox WHERE ticket_id = $1 ORDER BY id", ticket_id
    )
    handed: set[str] = set()
    for row in rows:
        payload = json.loads(row["payload"]) if isinstance(row["payload"], str) else row["payload"]
        batch = batches[transaction[payload["event_seq"]]]
        if row["kind"].startswith(CUSTOMER_MESSAGE_PREFIX):
            batch.messages.append(CustomerMessage.model_validate(payload))
        elif payload["dedupe_key"] not in handed:  # one row per recipient of a hand-off
            handed.add(payload["dedupe_key"])
            batch.handoffs.append(Handoff.model_validate(payload))
    return list(batches.values())


async def calibrate(
    tickets: TicketClient, pool: Pool, twin_queue: str, key: str, twin_id: str
) -> Calibration:
    client = tickets.temporal
    ticket_id, segments, events = await _segments(
        client, lambda settle: ticket_lifecycle(tickets, key, STANDARD, settle=settle)
    )
    plan = TwinPlan(start=_step(segments[0]), after=[_step(s) for s in segments[1:]])
    _, twin_segments, twin_events = await _segments(
        client,
        lambda settle: twin_lifecycle(client, twin_queue, plan, twin_id, STANDARD, settle=settle),
    )
    batches = await stored_batches(pool, ticket_id)
    return Calibration(
        ticket_id=ticket_id,
        twin_id=twin_id,
        plan=plan,
        ticket_segments=segments,
        twin_segments=twin_segments,
        ticket_counts=Counter(event_name(event) for event in events),
        twin_counts=Counter(event_name(event) for event in twin_events),
        append_batches=batches,
    )
