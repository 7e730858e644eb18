"""Optional OpenTelemetry tracing (`TICKETFLOW_OTEL_ENDPOINT`, the `otel` extra).

With an endpoint set, every client of the process carries the SDK's `TracingInterceptor`:
a ticket's start, its updates and signals, each workflow run and each activity become
spans of one trace, exported over OTLP/HTTP to a collector (Jaeger, Tempo, Honeycomb...).
Span names and attributes hold workflow and activity names and ids, never payloads.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from temporalio.client import Interceptor

SERVICE_NAME = "ticketflow"


@cache
def _install(endpoint: str, service_name: str) -> None:
    # One tracer provider per process, installed once however many clients connect.
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)


def tracing_interceptors(
    endpoint: str | None, service_name: str = SERVICE_NAME
) -> list[Interceptor]:
    if endpoint is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    _install(endpoint, service_name)
    return [TracingInterceptor()]


def flush(*, stop: bool = False) -> None:
    """Export what is buffered; with `stop`, export nothing more after it (tests)."""
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        force_flush()
    if stop and hasattr(provider, "shutdown"):
        provider.shutdown()
