"""The worker's SDK metrics (TICKETFLOW_PROMETHEUS_BIND): what Temporal's own dashboards
chart, from the process runtime every client of the process shares."""

from __future__ import annotations

import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment

from tests.workers.conftest import run_chatty
from workers.devstack import free_port
from workers.temporal_client import process_runtime


async def test_a_worker_exports_the_sdk_metrics(dev_env: WorkflowEnvironment) -> None:
    bind, queue = f"127.0.0.1:{free_port()}", f"metrics-{uuid.uuid4()}"
    await run_chatty(dev_env, process_runtime("INFO", bind), queue)
    async with httpx.AsyncClient() as http:
        scraped = (await http.get(f"http://{bind}/metrics")).text
    completed = {
        sample.labels.get("task_queue"): sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
        if sample.name == "temporal_workflow_completed_total"
    }
    assert completed.get(queue) == 1
