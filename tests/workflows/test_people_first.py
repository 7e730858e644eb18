"""Nothing waits for a herd (issue 25): a person's work is stored before quiet tickets'.

On the real dev server, which orders a task queue's backlog by priority key
(workflows.policy.TaskPriorities; one partition per queue, temporal-dev.yml). A ticket
appends what a person sent at `person_waiting` and what it decided by itself at `quiet`.
So when a herd of quiet tickets has appends queued (at 10:00, their progress checks'
reminders), a customer's reply to another ticket is stored first.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime, timedelta

import pytest
from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
    PollWorkflowTaskQueueRequest,
    PollWorkflowTaskQueueResponse,
    RespondWorkflowTaskCompletedRequest,
)
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import all_activities
from activities.database import Pool
from api.client import TicketClient
from tests.activities.factories import AGENT
from tests.waiting import eventually
from workers.main import build_worker
from workflows.contracts import (
    AddNote,
    CustomerReply,
    DeliveryFailure,
    Intake,
    MessageKind,
    TicketOutcome,
)
from workflows.policy import ServicePolicy
from workflows.sandbox import workflow_runner
from workflows.ticket import TicketWorkflow
from workflows.vocabulary import Channel, CustomerReplyKind

# The learned classifier off: its local activity would need the activities in every phase.
POLICY = ServicePolicy(model_min_confidence=1.0)
QUIET = POLICY.priorities.quiet
PERSON_WAITING = POLICY.priorities.person_waiting


def intake(subject: str) -> Intake:
    return Intake(
        idempotency_key=f"herd-{uuid.uuid4().hex}",
        channel=Channel.EMAIL,
        customer_id=f"c-{uuid.uuid4().hex[:8]}",
        subject=subject,
        description=subject,
    )


def gave_up(ticket_id: str) -> DeliveryFailure:
    return DeliveryFailure(
        dedupe_key=f"{ticket_id}:1:notify:0",
        kind=MessageKind.ACKNOWLEDGEMENT,
        destination="app_chat",
        attempts=5,
        error="HTTP 503",
    )


def reply(text: str) -> CustomerReply:
    return CustomerReply(reply_id=uuid.uuid4().hex, kind=CustomerReplyKind.MESSAGE, text=text)


async def open_herd(tickets: TicketClient, pool: Pool) -> tuple[list[str], str]:
    """Twelve tickets to be the herd and one for the customer who writes, all stored."""
    herd = [(await tickets.open(intake(f"订单 {n} 未发货"))).ticket_id for n in range(12)]
    bystander = (await tickets.open(intake("退款还没到账"))).ticket_id
    for ticket_id in [*herd, bystander]:
        await until_stored(pool, [ticket_id], "ticket_opened")
    return herd, bystander


async def until_stored(pool: Pool, ticket_ids: list[str], event: str) -> None:
    """Bounded wait for every ticket's `event` to reach the event store."""
    stored = await eventually(
        lambda: pool.fetchval(
            "SELECT count(DISTINCT ticket_id) FROM ticket_events"
            " WHERE ticket_id = ANY($1::text[]) AND type = $2",
            ticket_ids,
            event,
        ),
        lambda n: n == len(ticket_ids),
    )
    assert stored == len(ticket_ids), f"{event}: {stored} of {len(ticket_ids)} tickets stored"


async def last_append_priority(client: Client, ticket_id: str) -> int:
    """The priority key the ticket's last append was scheduled with (0: the ticket's own)."""
    history = await client.get_workflow_handle(ticket_id).fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    return scheduled[-1].priority.priority_key


async def append_started(client: Client, ticket_id: str) -> datetime:
    """When the ticket's last append was handed to an activity worker."""
    history = await client.get_workflow_handle(ticket_id).fetch_history()
    started = [
        e.event_time.ToDatetime()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    return started[-1]


async def test_a_customers_reply_is_stored_before_a_herd_of_quiet_tickets(
    dev_env: WorkflowEnvironment, pg_pool: Pool
) -> None:
    client = dev_env.client
    queue = f"tickets-{uuid.uuid4()}"
    tickets = TicketClient(client, task_queue=queue, policy=POLICY)
    herd: list[str] = []
    bystander = ""
    try:
        async with build_worker(client, queue, pg_pool, POLICY):
            herd, bystander = await open_herd(tickets, pg_pool)

        # Workflows only: the herd wakes (a relay's report of a message it gave up on, not
        # a person's input, stands in for each 10:00 timer), then the customer replies;
        # every append queues, with no activity worker to take it.
        for ticket_id in herd:
            await client.get_workflow_handle(ticket_id).signal(
                TicketWorkflow.delivery_failed, gave_up(ticket_id)
            )
        await tickets.customer_reply(bystander, reply("请问退款到哪一步了?"))
        async with Worker(
            client,
            task_queue=queue,
            workflows=[TicketWorkflow],
            # Local activities only (a replay resolves the intake's claim): appends queue.
            activities=all_activities(pg_pool, POLICY),
            no_remote_activities=True,
            workflow_runner=workflow_runner(),
        ):
            for ticket_id in [*herd, bystander]:
                await until_scheduled(client, ticket_id)
        assert await last_append_priority(client, bystander) == PERSON_WAITING
        assert {await last_append_priority(client, t) for t in herd} == {QUIET}

        # One append at a time, from the queued backlog: the reply's goes first.
        async with Worker(
            client,
            task_queue=queue,
            activities=all_activities(pg_pool, POLICY),
            max_concurrent_activities=1,
        ):
            await until_stored(pg_pool, [bystander], "customer_replied")
            await until_stored(pg_pool, herd, "delivery_failed")
        herd_stored = [await append_started(client, t) for t in herd]
        assert await append_started(client, bystander) <= min(herd_stored)
    finally:
        for ticket_id in [*herd, bystander]:
            with contextlib.suppress(RPCError):
                await client.get_workflow_handle(ticket_id).terminate("test finished")


async def until_scheduled(client: Client, ticket_id: str) -> None:
    """Bounded wait for the ticket's workflow task to schedule its append after a signal."""

    async def kinds() -> list[EventType.ValueType]:
        history = await client.get_workflow_handle(ticket_id).fetch_history()
        return [e.event_type for e in history.events]

    def scheduled(seen: list[EventType.ValueType]) -> bool:
        return (
            seen[-1] == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            and EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED in seen
        )

    assert scheduled(await eventually(kinds, scheduled)), f"{ticket_id} never scheduled its append"


async def options_priorities(client: Client, ticket_id: str) -> list[int]:
    """The priority keys the ticket was set to after its start, in order."""
    history = await client.get_workflow_handle(ticket_id).fetch_history()
    return [
        e.workflow_execution_options_updated_event_attributes.priority.priority_key
        for e in history.events
        if e.HasField("workflow_execution_options_updated_event_attributes")
    ]


async def task_started_after_signal(client: Client, ticket_id: str) -> datetime | None:
    """When the workflow task that took the ticket's last signal started, if it has."""
    events = (await client.get_workflow_handle(ticket_id).fetch_history()).events
    signalled = max(
        n
        for n, e in enumerate(events)
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    )
    for e in events[signalled:]:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            return e.event_time.ToDatetime()
    return None


async def until_taken(client: Client, ticket_id: str) -> datetime:
    """Bounded wait for a worker to start the task that takes the ticket's last signal."""
    started = await eventually(
        lambda: task_started_after_signal(client, ticket_id), lambda at: at is not None
    )
    assert started is not None, f"{ticket_id}'s signal never taken"
    return started


async def until_settled(client: Client, ticket_id: str) -> None:
    """Bounded wait for the API to settle a raised ticket once its task was taken."""
    settled = [QUIET, PERSON_WAITING, QUIET]
    seen = await eventually(
        lambda: options_priorities(client, ticket_id), lambda now: now == settled
    )
    assert seen == settled, f"{ticket_id} not settled: {seen}"


async def until_backlog(client: Client, queue: str, waiting: bool) -> None:
    """Bounded wait for the server to report the queue's workflow tasks as waiting, or as
    not (its statistics lag the queue by a few seconds)."""
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        report_stats=True,
    )

    async def backlogged() -> bool | None:
        try:
            found = await client.workflow_service.describe_task_queue(request)
        except RPCError as error:
            # The dev server at times answers a statistics request "operation was
            # canceled" (it gathers them from the queue's partitions): ask again.
            if error.status != RPCStatusCode.CANCELLED and "canceled" not in error.message:
                raise
            return None
        return found.stats.approximate_backlog_age.ToTimedelta() > timedelta(0)

    seen = await eventually(backlogged, lambda behind: behind is waiting)
    assert seen is waiting, (
        f"{queue} never reported its backlog {'waiting' if waiting else 'empty'}"
        f" (last seen: {'cancelled' if seen is None else 'waiting' if seen else 'empty'})"
    )


async def test_a_person_acting_while_the_queue_is_behind_goes_before_the_herds_tasks(
    dev_env: WorkflowEnvironment, pg_pool: Pool
) -> None:
    """Workflow tasks run at their ticket's priority, and a herd's tickets are as quiet as
    the one a customer writes to. So while the queue is behind, the API raises the
    ticket for the length of the reply (TicketClient): its task is queued at
    `person_waiting` and taken before the herd's; when the queue keeps up, nothing is
    raised and the history gains nothing."""
    client = dev_env.client
    queue = f"tickets-{uuid.uuid4()}"
    # Behind as soon as a task waits at all: this herd is queued for moments, not minutes.
    tickets = TicketClient(client, task_queue=queue, policy=POLICY, raise_when_behind=timedelta(0))
    herd: list[str] = []
    bystander = ""
    try:
        async with build_worker(client, queue, pg_pool, POLICY):
            herd, bystander = await open_herd(tickets, pg_pool)
            for ticket_id in [*herd, bystander]:
                assert await tickets.settle(ticket_id)  # as the API's intake does
            # The queue keeps up: a reply raises nothing.
            await until_backlog(client, queue, waiting=False)
            await tickets.customer_reply(bystander, reply("在吗?"))
            await until_stored(pg_pool, [bystander], "customer_replied")
            assert await options_priorities(client, bystander) == [QUIET]

        # No worker: the herd's tasks queue (as a 10:00 herd's do), then the customer writes.
        for ticket_id in herd:
            await client.get_workflow_handle(ticket_id).signal(
                TicketWorkflow.delivery_failed, gave_up(ticket_id)
            )
        await until_backlog(client, queue, waiting=True)
        # A client of its own, as another API process, once it too sees the backlog (the
        # server's figure once read 0 again right after the test's own ask, on a loaded CI).
        tickets = TicketClient(
            client, task_queue=queue, policy=POLICY, raise_when_behind=timedelta(0)
        )
        await until_behind(tickets)
        await tickets.customer_reply(bystander, reply("请问退款到哪一步了?"))
        # Raised; settled only once a worker has taken the reply's task (a settle would
        # queue it behind the herd again).
        assert await options_priorities(client, bystander) == [QUIET, PERSON_WAITING]

        # One workflow task at a time, from the queued backlog: the reply's goes first.
        async with Worker(
            client,
            task_queue=queue,
            workflows=[TicketWorkflow],
            activities=all_activities(pg_pool, POLICY),
            no_remote_activities=True,
            max_concurrent_workflow_tasks=1,
            workflow_runner=workflow_runner(),
        ):
            started = {t: await until_taken(client, t) for t in [*herd, bystander]}
            await until_settled(client, bystander)
        assert started[bystander] <= min(started[t] for t in herd)
    finally:
        for ticket_id in [*herd, bystander]:
            with contextlib.suppress(RPCError):
                await client.get_workflow_handle(ticket_id).terminate("test finished")


async def until_behind(tickets: TicketClient) -> None:
    """Bounded wait for the client's own figure (asked at most once a second) to show the
    ticket queue's backlog."""
    waited = await eventually(tickets._queue.waited, lambda age: age > timedelta(0))
    assert waited > timedelta(0), "the client never saw the queue behind"


# A threshold no backlog age is under: every input is raised.
ALWAYS_BEHIND = timedelta(seconds=-1)


async def until_released(tickets: TicketClient, ticket_id: str) -> None:
    """Bounded wait for the client to let go of a raised ticket (its last input settled)."""

    async def raised() -> bool:
        return ticket_id in tickets._raised

    assert not await eventually(raised, lambda up: not up), f"{ticket_id} still raised"


async def test_inputs_at_once_on_one_ticket_share_one_raise_and_one_settle(
    dev_env: WorkflowEnvironment, pg_pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two agents' notes and a customer's reply to one ticket at the same moment, while
    the queue is behind: the ticket is raised once, before any of them is sent, and
    settled once, after the last. The raise is held until all three have come, so an
    input that did not wait for it would reach the ticket first."""
    client = dev_env.client
    queue = f"tickets-{uuid.uuid4()}"
    tickets = TicketClient(client, task_queue=queue, policy=POLICY, raise_when_behind=ALWAYS_BEHIND)
    gate, raising = asyncio.Event(), asyncio.Event()
    set_priority = tickets._set_priority

    async def held(ticket_id: str, key: int | None) -> bool:
        if key == PERSON_WAITING:
            raising.set()
            await gate.wait()
        return await set_priority(ticket_id, key)

    monkeypatch.setattr(tickets, "_set_priority", held)
    ticket_id = ""
    try:
        async with build_worker(client, queue, pg_pool, POLICY):
            ticket_id = (await tickets.open(intake("发票抬头错了"))).ticket_id
            await until_stored(pg_pool, [ticket_id], "ticket_opened")
            assert await tickets.settle(ticket_id)
            inputs = asyncio.gather(
                tickets.act(ticket_id, AddNote(actor=AGENT, text="已联系财务")),
                tickets.act(ticket_id, AddNote(actor=AGENT, text="财务说明天重开")),
                tickets.customer_reply(ticket_id, reply("什么时候能重开?")),
            )
            await asyncio.wait_for(raising.wait(), 20)

            async def waiting() -> int:
                return tickets._raised[ticket_id].inputs

            try:
                assert await eventually(waiting, lambda n: n == 3) == 3
            finally:
                gate.set()  # a held raise keeps the ticket's lock: aclose would wait for it
            await inputs
            await until_stored(pg_pool, [ticket_id], "customer_replied")
            await until_count(pg_pool, ticket_id, "note_added", 2)
            await until_released(tickets, ticket_id)
        assert await options_priorities(client, ticket_id) == [QUIET, PERSON_WAITING, QUIET]
        events = (await client.get_workflow_handle(ticket_id).fetch_history()).events
        raised_at = next(
            n
            for n, e in enumerate(events)
            if e.workflow_execution_options_updated_event_attributes.priority.priority_key
            == PERSON_WAITING
        )
        sent = [
            n
            for n, e in enumerate(events)
            if e.event_type
            in (
                EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
                EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
            )
        ]
        assert len(sent) == 3
        assert raised_at < min(sent)
    finally:
        await tickets.aclose()
        with contextlib.suppress(RPCError):
            await client.get_workflow_handle(ticket_id).terminate("test finished")


async def until_count(pool: Pool, ticket_id: str, event: str, count: int) -> None:
    """Bounded wait for the ticket to have `count` of `event` in the event store."""
    stored = await eventually(
        lambda: pool.fetchval(
            "SELECT count(*) FROM ticket_events WHERE ticket_id = $1 AND type = $2",
            ticket_id,
            event,
        ),
        lambda n: n == count,
    )
    assert stored == count, f"{ticket_id}: {stored} {event}, not {count}"


async def test_a_signal_that_comes_while_a_task_runs_is_settled_after_the_next_one_starts(
    dev_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workflow task already running when a customer's reply comes cannot take it: the
    server keeps the reply for the next task. Settled while the first ran, the ticket would
    queue that next task at the quiet priority, behind a herd. This test is the worker:
    it holds the first task by a raw poll until the client has looked at the ticket and
    seen it running, so the reply surely comes while it runs."""
    client = dev_env.client
    queue = f"held-{uuid.uuid4()}"
    tickets = TicketClient(client, task_queue=queue, policy=POLICY, raise_when_behind=ALWAYS_BEHIND)
    looked = asyncio.Event()
    handle_for = tickets.handle

    def watched(ticket_id: str) -> WorkflowHandle[TicketWorkflow, TicketOutcome]:
        handle = handle_for(ticket_id)
        describe = handle.describe

        async def described(rpc_timeout: timedelta | None = None) -> WorkflowExecutionDescription:
            try:
                return await describe(rpc_timeout=rpc_timeout)
            finally:
                looked.set()

        monkeypatch.setattr(handle, "describe", described)
        return handle

    monkeypatch.setattr(tickets, "handle", watched)
    ticket_id = f"held-{uuid.uuid4()}"
    await client.start_workflow("HeldByTheTest", id=ticket_id, task_queue=queue)
    try:
        first = await take_task(client, queue)
        await tickets.customer_reply(ticket_id, reply("在吗?"))
        await asyncio.wait_for(looked.wait(), 20)
        assert ticket_id in tickets._raised  # it saw the first task running: still raised
        await complete_task(client, first)  # the reply's task is scheduled now
        second = await take_task(client, queue)
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED in [
            e.event_type for e in second.history.events
        ]
        await complete_task(client, second)
        await until_released(tickets, ticket_id)

        events = (await client.get_workflow_handle(ticket_id).fetch_history()).events
        assert await options_priorities(client, ticket_id) == [PERSON_WAITING, QUIET]
        settled_at = max(
            n
            for n, e in enumerate(events)
            if e.HasField("workflow_execution_options_updated_event_attributes")
        )
        second_started = [
            n
            for n, e in enumerate(events)
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
        ][1]
        assert settled_at > second_started
    finally:
        await tickets.aclose()
        with contextlib.suppress(RPCError):
            await client.get_workflow_handle(ticket_id).terminate("test finished")


async def take_task(client: Client, queue: str) -> PollWorkflowTaskQueueResponse:
    """Poll one workflow task as a worker would, and hold it (started, not completed)."""
    for _ in range(10):
        polled = await client.workflow_service.poll_workflow_task_queue(
            PollWorkflowTaskQueueRequest(
                namespace=client.namespace, task_queue=TaskQueue(name=queue), identity="test"
            )
        )
        if polled.task_token:
            return polled
    raise AssertionError(f"no workflow task on {queue}")


async def complete_task(client: Client, task: PollWorkflowTaskQueueResponse) -> None:
    """Complete a held task with no commands: the workflow goes on waiting."""
    await client.workflow_service.respond_workflow_task_completed(
        RespondWorkflowTaskCompletedRequest(
            namespace=client.namespace, task_token=task.task_token, identity="test"
        )
    )
