"""The outbox relay's runs, and their saved history.

The relay never ends and follows each new build as soon as it is current
(workers.main.AUTO_UPGRADING), so a change to its commands must replay on the histories
of the builds before it, like the reviews' and the surges'. This records one run on the
real dev server, told to suggest continue-as-new early, with the real relay activity
over a PostgreSQL schema of its own; `TICKETFLOW_RECORD_HISTORIES=1` saves it to
`histories/relay/`, which tests/workflows/test_replay.py replays with the others.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.delivery import DeliveryConfig, OutboxRelay
from activities.event_store import EventStore
from activities.messages import MessageTemplates
from activities.outbox import Outbox
from tests.activities.test_delivery import SECRET, _queue_work_order, held, webhook
from tests.codec_keys import CONVERTER
from tests.conftest import schema_of_its_own
from tests.waiting import eventually
from workers.main import build_worker, start_relay
from workers.receiver import Inbox
from workflows.policy import ServicePolicy
from workflows.relay import OutboxRelayWorkflow, RelayInput, relay_lane, relay_workflow_id
from workflows.sandbox import workflow_runner

HISTORIES = Path(__file__).parent / "histories" / "relay"
POLICY = ServicePolicy()
# Rounds of a tenth of a second: a run reaches the suggested 60 events in about ten.
CONFIG = DeliveryConfig(round=timedelta(milliseconds=100), poll_interval=timedelta(milliseconds=20))


@pytest.mark.parametrize("relays", [1, 2])
async def test_a_relay_run_continues_as_new_with_its_totals_and_replays(
    eager_can_env: WorkflowEnvironment, database_url: str, relays: int
) -> None:
    client = eager_can_env.client
    task_queue = f"relay-{uuid.uuid4()}"
    handle = client.get_workflow_handle(relay_workflow_id(task_queue))
    async with schema_of_its_own(database_url, "relay") as pool:
        relay = OutboxRelay(pool, POLICY, MessageTemplates.load(), CONFIG, client)
        try:
            async with build_worker(client, task_queue, pool, POLICY, relay=relay):
                await start_relay(client, task_queue, relays)
                first = (await handle.describe()).run_id
                for _ in range(400):  # bounded: 20 s for about ten rounds of 0.1 s
                    if (await handle.describe()).run_id != first:
                        break
                    await asyncio.sleep(0.05)
                await handle.terminate("test finished")
        finally:
            await relay.close()

    history = await client.get_workflow_handle(handle.id, run_id=first).fetch_history()
    last = history.events[-1]
    assert last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    # The next run goes on from this one's totals: as many rounds as it ran.
    [carried] = await CONVERTER.decode(
        list(last.workflow_execution_continued_as_new_event_attributes.input.payloads),
        [RelayInput],
    )
    completed = EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    completions = sum(event.event_type == completed for event in history.events)
    assert carried.rounds * relays == completions > relays
    assert carried.relays == relays

    saved_as = HISTORIES / ("relay.json" if relays == 1 else f"relay-{relays}.json")
    if os.environ.get("TICKETFLOW_RECORD_HISTORIES"):
        saved_as.parent.mkdir(exist_ok=True)
        saved_as.write_text(history.to_json())
    saved = WorkflowHistory.from_json("saved", saved_as.read_text())
    for replayed in (history, saved):
        await Replayer(
            workflows=[OutboxRelayWorkflow],
            data_converter=CONVERTER,
            workflow_runner=workflow_runner(),
        ).replay_workflow(replayed)


async def test_the_relay_delivers_on_its_own_lane_while_the_tickets_lane_stands_still(
    dev_env: WorkflowEnvironment, database_url: str
) -> None:
    """At 10:00 a herd of tickets fills the tickets' task queue for minutes. The relay
    polls a queue of its own, so a message queued then goes out at once: here the
    tickets' lane is stopped outright, as if the herd held every one of its slots. A
    relay an earlier version left on the tickets' queue is ended and started again on
    the lane."""
    client = dev_env.client
    task_queue = f"lane-{uuid.uuid4()}"
    inbox = Inbox(secret=SECRET)
    async with webhook(inbox) as url, schema_of_its_own(database_url, "relay_lane") as pool:
        config = DeliveryConfig(
            webhook_url=url, secret=SecretStr(SECRET), poll_interval=timedelta(milliseconds=50)
        )
        relay = OutboxRelay(pool, POLICY, MessageTemplates.load(), config, client)
        # The relay as versions before the lane started it: on the tickets' own queue.
        legacy = await client.start_workflow(
            OutboxRelayWorkflow.run,
            RelayInput(),
            id=relay_workflow_id(task_queue),
            task_queue=task_queue,
        )
        workers = build_worker(client, task_queue, pool, POLICY, relay=relay)
        try:
            async with workers:
                await start_relay(client, task_queue)
                ended = client.get_workflow_handle(legacy.id, run_id=legacy.result_run_id)
                assert (await ended.describe()).status == WorkflowExecutionStatus.TERMINATED
                moved = await client.get_workflow_handle(relay_workflow_id(task_queue)).describe()
                assert moved.task_queue == relay_lane(task_queue)
                assert moved.status == WorkflowExecutionStatus.RUNNING

                tickets_lane = next(w for w in workers.lanes if w.task_queue == task_queue)
                await tickets_lane.shutdown()
                ticket_id = await _queue_work_order(EventStore(pool, Outbox(pool, POLICY)))
                arrived = await eventually(held(lambda: inbox.of(ticket_id)), bool, within=20)
                assert [r.kind for r in arrived] == ["work_order"]
                await client.get_workflow_handle(moved.id).terminate("test done")
        finally:
            await relay.close()
