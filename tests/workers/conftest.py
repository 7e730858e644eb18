"""Logging hygiene for the runtime-wiring tests, and a client on a runtime of the test's
own; the Temporal servers are in tests/conftest.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.codec_keys import CONVERTER
from tests.workers.chatty_workflow import ChattyWorkflow


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """`configure_logging` (called by the CLI too) changes process-wide state: put it back,
    or a handler bound to one test's captured stdout would outlive that test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    on_message = (
        workflow.logger.workflow_info_on_message,
        activity.logger.activity_info_on_message,
    )
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
    workflow.logger.workflow_info_on_message, activity.logger.activity_info_on_message = on_message


async def run_chatty(env: WorkflowEnvironment, runtime: Runtime, queue: str) -> None:
    """ChattyWorkflow run once on the dev server by a client on `runtime`."""
    client = await Client.connect(
        env.client.service_client.config.target_host,
        namespace=env.client.namespace,
        data_converter=CONVERTER,
        runtime=runtime,
    )
    async with Worker(client, task_queue=queue, workflows=[ChattyWorkflow]):
        await client.execute_workflow(ChattyWorkflow.run, id=queue, task_queue=queue)
