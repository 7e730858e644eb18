"""The worker's SDK metrics (TICKETFLOW_PROMETHEUS_BIND): what Temporal's own dashboards
chart, from the process runtime every client of the process shares."""

from __future__ import annotations

import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.codec_keys import CONVERTER
from tests.workers.chatty_workflow import ChattyWorkflow
from workers.devstack import free_port
from workers.temporal_client import process_runtime


async def test_a_worker_exports_the_sdk_metrics(dev_env: WorkflowEnvironment) -> None:
    bind = f"127.0.0.1:{free_port()}"
    client = await Client.connect(
        dev_env.client.service_client.config.target_host,
        namespace=dev_env.client.namespace,
        data_converter=CONVERTER,
        runtime=process_runtime("INFO", bind),
    )
    queue = f"metrics-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[ChattyWorkflow]):
        await client.execute_workflow(ChattyWorkflow.run, id=queue, task_queue=queue)
        async with httpx.AsyncClient() as http:
            scraped = (await http.get(f"http://{bind}/metrics")).text
    completed = {
        sample.labels.get("task_queue"): sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
        if sample.name == "temporal_workflow_completed_total"
    }
    assert completed.get(queue) == 1
