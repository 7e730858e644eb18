"""Optional tracing: with TICKETFLOW_OTEL_ENDPOINT set, a workflow's start and run arrive
at an OTLP/HTTP collector as spans of one trace."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.codec_keys import CODEC_ENV
from tests.workers.chatty_workflow import ChattyWorkflow
from workers.settings import Settings
from workers.temporal_client import connect_temporal
from workers.tracing import flush


@pytest.fixture
def collector() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    """An OTLP/HTTP endpoint that keeps what it receives, as a collector would. Plain
    http.server in a thread: a traced server would trace its own exports, for ever."""
    received: list[ExportTraceServiceRequest] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            exported = ExportTraceServiceRequest()
            exported.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(exported)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", received
    # Export nothing more: the rest of the session has no collector to send to.
    flush(stop=True)
    server.shutdown()
    thread.join()


async def test_a_workflow_is_traced_from_start_to_run(
    dev_env: WorkflowEnvironment, collector: tuple[str, list[ExportTraceServiceRequest]]
) -> None:
    endpoint, received = collector
    assert CODEC_ENV  # the client seals payloads as everywhere else
    settings = Settings(otel_endpoint=endpoint)
    client = await connect_temporal(
        settings,
        target_host=dev_env.client.service_client.config.target_host,
        namespace=dev_env.client.namespace,
    )
    queue = f"traced-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[ChattyWorkflow]):
        await client.execute_workflow(ChattyWorkflow.run, id=queue, task_queue=queue)
    await asyncio.to_thread(flush)

    spans = [
        span
        for request in received
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    by_name = {span.name: span for span in spans}
    assert {"StartWorkflow:ChattyWorkflow", "RunWorkflow:ChattyWorkflow"} <= set(by_name)
    assert (
        by_name["StartWorkflow:ChattyWorkflow"].trace_id
        == by_name["RunWorkflow:ChattyWorkflow"].trace_id
    )
