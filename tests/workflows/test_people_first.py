"""Nothing waits for a herd (issue 25): a person's work goes before quiet tickets' tasks.

On the real dev server, which orders a task queue's backlog by priority key
(workflows.policy.TaskPriorities; one partition per queue, temporal-dev.yml). A ticket
starts at the priority of a person waiting and settles at the quiet one once its intake
is stored; a person's later input is stored by an append at their priority. So when a
herd of quiet tickets has work queued (at 10:00, their progress checks), a new e-mail is
taken first, and a customer's reply to another ticket is stored ahead of the herd's.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.database import Pool
from api.client import TicketClient
from workers.main import build_worker
from workflows.contracts import CustomerReply, DeliveryFailure, Intake, MessageKind
from workflows.policy import ServicePolicy
from workflows.ticket import TicketWorkflow
from workflows.vocabulary import Channel, CustomerReplyKind

POLICY = ServicePolicy()
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


async def priority_of(client: Client, ticket_id: str) -> int:
    described = await client.get_workflow_handle(ticket_id).describe()
    return described.raw_description.workflow_execution_info.priority.priority_key


async def until_priority(client: Client, ticket_id: str, key: int | None) -> None:
    """Bounded wait for the ticket to settle (a local activity after its store)."""
    for _ in range(200):
        if await priority_of(client, ticket_id) == key:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{ticket_id} never reached priority {key}")


async def first_task_started_after(
    client: Client, ticket_id: str, event: EventType.ValueType
) -> datetime:
    """When the first workflow task after the ticket's last `event` was handed to a worker."""
    history = await client.get_workflow_handle(ticket_id).fetch_history()
    events = list(history.events)
    last = max(i for i, e in enumerate(events) if e.event_type == event)
    started = next(
        e for e in events[last:] if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
    )
    return started.event_time.ToDatetime()


async def until_stored(pool: Pool, ticket_ids: list[str], event: str) -> None:
    """Bounded wait for every ticket's `event` to reach the event store."""
    for _ in range(200):
        replied = await pool.fetchval(
            "SELECT count(DISTINCT ticket_id) FROM ticket_events"
            " WHERE ticket_id = ANY($1::text[]) AND type = $2",
            ticket_ids,
            event,
        )
        if replied == len(ticket_ids):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{event} still not stored after 10 s")


async def last_append_priority(client: Client, ticket_id: str) -> int:
    """The priority key the ticket's last append was scheduled with (0: the ticket's own)."""
    history = await client.get_workflow_handle(ticket_id).fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    return scheduled[-1].priority.priority_key


async def test_a_new_email_and_a_customers_reply_go_before_a_herd_of_quiet_tickets(
    dev_env: WorkflowEnvironment, pg_pool: Pool
) -> None:
    client = dev_env.client
    queue = f"tickets-{uuid.uuid4()}"
    tickets = TicketClient(client, task_queue=queue, policy=POLICY)
    async with build_worker(client, queue, pg_pool, POLICY):
        herd = [(await tickets.open(intake(f"订单 {n} 未发货"))).ticket_id for n in range(12)]
        bystander = (await tickets.open(intake("退款还没到账"))).ticket_id
        for ticket_id in [*herd, bystander]:
            await until_priority(client, ticket_id, QUIET)

    # No worker: the herd's work queues up at the quiet priority. A relay's report of a
    # message it gave up on (not a person's input) stands in for each 10:00 timer.
    for ticket_id in herd:
        await client.get_workflow_handle(ticket_id).signal(
            TicketWorkflow.delivery_failed, gave_up(ticket_id)
        )
    await tickets.customer_reply(bystander, reply("请问退款到哪一步了?"))
    newcomer = (await tickets.open(intake("无法登录"))).ticket_id
    assert await priority_of(client, newcomer) == PERSON_WAITING
    assert await priority_of(client, bystander) == QUIET  # no workflow task spent on it

    async with build_worker(client, queue, pg_pool, POLICY):
        for ticket_id in [*herd, bystander, newcomer]:
            await until_priority(client, ticket_id, QUIET)
        await until_stored(pg_pool, [bystander], "customer_replied")
        await until_stored(pg_pool, herd, "delivery_failed")

    signalled = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    started = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    herd_served = [await first_task_started_after(client, t, signalled) for t in herd]
    assert await first_task_started_after(client, newcomer, started) <= min(herd_served)
    # The reply's append goes ahead of quiet tickets' appends; the herd's take the
    # ticket's own (quiet) priority.
    assert await last_append_priority(client, bystander) == PERSON_WAITING
    assert {await last_append_priority(client, t) for t in herd} == {0}
    # And what they sent is kept: the reply as an event, the new ticket's intake.
    stored = await pg_pool.fetch(
        "SELECT ticket_id, type FROM ticket_events WHERE ticket_id = ANY($1::text[])",
        [bystander, newcomer],
    )
    assert "customer_replied" in {r["type"] for r in stored if r["ticket_id"] == bystander}
    assert {r["ticket_id"] for r in stored} == {bystander, newcomer}
