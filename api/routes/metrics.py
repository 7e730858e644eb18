"""Service health for managers: SPEC §5's indicators as JSON (`/v1/metrics`, which the
dashboard draws) and for Prometheus (`/metrics`), and the surge investigations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from temporalio.client import WorkflowExecutionStatus

from activities.indicators import GroupBy, ServiceHealth, service_health
from api.access import Caller, Rule
from api.deps import Svc, require, utc
from api.errors import COMMON_RESPONSES, ApiError
from api.prometheus import HttpMetrics, exposition
from workflows import search_attributes as sa

MAX_METRICS_PERIOD = timedelta(days=366)

metrics = APIRouter(tags=["service health"], responses=COMMON_RESPONSES)


@metrics.get("/v1/metrics")
async def service_health_indicators(
    svc: Svc,
    _caller: Annotated[Caller, Depends(require(Rule.METRICS))],
    start: Annotated[datetime, Query(alias="from", description="inclusive")],
    end: Annotated[datetime, Query(alias="to", description="exclusive")],
    group_by: Annotated[GroupBy | None, Query()] = None,
) -> ServiceHealth:
    """SPEC §5's indicators for `[from, to)`, each with its n (../shared/METRICS.md):
    volumes, first-response time (live and async), transfers, resolution and first-contact
    resolution, reopens, SLA attainment per priority, backlog at `to`, CSAT, NPS, and the
    response time of each department and partner."""
    start_utc, end_utc = utc(start, "from"), utc(end, "to")
    assert start_utc is not None and end_utc is not None
    if not start_utc < end_utc <= start_utc + MAX_METRICS_PERIOD:
        raise ApiError(422, "invalid_request", "from must be before to, at most 366 days apart")
    return await svc.call(service_health(svc.pool, svc.policy, start_utc, end_utc, group_by))


class Surge(BaseModel):
    investigation_id: str
    dimension: str
    value: str
    # What it looks into: its topic, and its category (or the one its topic's rise explains).
    category: str | None
    topic: str | None
    open: bool
    started_at: datetime


@metrics.get("/v1/surges")
async def surges(
    svc: Svc, _caller: Annotated[Caller, Depends(require(Rule.METRICS))]
) -> list[Surge]:
    """Surge investigations of this task queue (SPEC §5's warning), open ones first."""
    query = (
        f"WorkflowType = 'SurgeInvestigationWorkflow' AND TaskQueue = '{svc.tickets.task_queue}'"
    )

    async def found() -> list[Surge]:
        listed: list[Surge] = []
        async for execution in svc.tickets.temporal.list_workflows(query, limit=200):
            _, dimension, rest = execution.id.split("-", 2)
            attributes = execution.typed_search_attributes
            listed.append(
                Surge(
                    investigation_id=execution.id,
                    dimension=dimension,
                    value=rest.rsplit("-", 1)[0],
                    category=attributes.get(sa.TICKET_CATEGORY),
                    topic=attributes.get(sa.TICKET_TOPIC),
                    open=execution.status is WorkflowExecutionStatus.RUNNING,
                    started_at=execution.start_time,
                )
            )
        return sorted(listed, key=lambda surge: (not surge.open, surge.investigation_id))

    return await svc.call(found())


@metrics.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def prometheus_metrics(
    request: Request, svc: Svc, _caller: Annotated[Caller, Depends(require(Rule.METRICS))]
) -> PlainTextResponse:
    """The indicators of the last `metrics_window` (24 h) and the API's HTTP requests and
    latencies, in Prometheus' text format: scrape with a manager's key (`authorization` in
    the scrape config)."""
    end = datetime.now(UTC)
    health = await svc.call(
        service_health(svc.pool, svc.policy, end - svc.settings.metrics_window, end)
    )
    http: HttpMetrics = request.app.state.http_metrics
    body = exposition(health) + http.exposition()
    return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)
