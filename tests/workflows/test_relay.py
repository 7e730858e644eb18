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

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.delivery import DeliveryConfig, OutboxRelay
from activities.messages import MessageTemplates
from tests.codec_keys import CONVERTER
from tests.conftest import schema_of_its_own
from workers.main import build_worker, start_relay
from workflows.policy import ServicePolicy
from workflows.relay import OutboxRelayWorkflow, RelayInput, relay_workflow_id
from workflows.sandbox import workflow_runner

SAVED = Path(__file__).parent / "histories" / "relay" / "relay.json"
POLICY = ServicePolicy()
# Rounds of a tenth of a second: a run reaches the suggested 60 events in about ten.
CONFIG = DeliveryConfig(round=timedelta(milliseconds=100), poll_interval=timedelta(milliseconds=20))


async def test_a_relay_run_continues_as_new_with_its_totals_and_replays(
    eager_can_env: WorkflowEnvironment, database_url: str
) -> None:
    client = eager_can_env.client
    task_queue = f"relay-{uuid.uuid4()}"
    handle = client.get_workflow_handle(relay_workflow_id(task_queue))
    async with schema_of_its_own(database_url, "relay") as pool:
        relay = OutboxRelay(pool, POLICY, MessageTemplates.load(), CONFIG, client)
        try:
            async with build_worker(client, task_queue, pool, POLICY, relay=relay):
                await start_relay(client, task_queue)
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
    assert carried.rounds == sum(event.event_type == completed for event in history.events) > 1

    if os.environ.get("TICKETFLOW_RECORD_HISTORIES"):
        SAVED.parent.mkdir(exist_ok=True)
        SAVED.write_text(history.to_json())
    saved = WorkflowHistory.from_json("saved", SAVED.read_text())
    for replayed in (history, saved):
        await Replayer(
            workflows=[OutboxRelayWorkflow],
            data_converter=CONVERTER,
            workflow_runner=workflow_runner(),
        ).replay_workflow(replayed)
