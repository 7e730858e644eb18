"""`GET /metrics`: the service-health indicators of the last window, and the API's own
HTTP figures, for Prometheus.

The same numbers as `GET /v1/metrics` (activities.indicators), for a rolling window
(`api.metrics_window`, 24 h by default), as gauges a company's Grafana can chart and
alert on. The worker exposes the SDK's own metrics apart (`TICKETFLOW_PROMETHEUS_BIND`).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from activities.indicators import ServiceHealth, Share, Spread

PREFIX = "ticketflow_"


class _Indicators(Collector):
    def __init__(self, health: ServiceHealth) -> None:
        self._health = health

    def collect(self) -> Iterator[GaugeMetricFamily]:
        health = self._health
        opened = _family("tickets_opened", "tickets opened in the window", [])
        seconds = _family(
            "first_response_seconds", "first-response time", ["channel_kind", "quantile"]
        )
        within = _family(
            "first_response_within_target_ratio", "share answered within target", ["channel_kind"]
        )
        ratios = {
            name: _family(f"{name}_ratio", help_, [])
            for name, help_ in (
                ("resolution", "tickets opened in the window and resolved"),
                ("first_contact_resolution", "resolved with no department and no reopen"),
                ("transfer", "tickets resolved in the window that went to a department"),
                ("reopen", "tickets resolved in the window that were reopened"),
                ("csat_satisfied", "CSAT ratings of 4 or 5"),
            )
        }
        nps = _family("nps_score", "% promoters - % detractors", [])
        for group in health.groups:
            opened.add_metric([], group.opened)
            first = group.first_response
            for kind, spread, share in (
                ("live", first.live, first.live_within_target),
                ("async", first.async_, first.async_within_target),
            ):
                _spread(seconds, spread, [kind])
                _ratio(within, share, [kind])
            _ratio(ratios["resolution"], group.resolved, [])
            _ratio(ratios["first_contact_resolution"], group.first_contact_resolution, [])
            _ratio(ratios["transfer"], group.transferred, [])
            _ratio(ratios["reopen"], group.reopened, [])
            _ratio(ratios["csat_satisfied"], group.csat_satisfied, [])
            if group.nps_score is not None:
                nps.add_metric([], group.nps_score)
        sla = _family("sla_met_ratio", "SLA milestones met of those due", ["priority"])
        for attainment in health.sla:
            _ratio(sla, attainment.met, [attainment.priority])
        backlog = _family(
            "backlog_tickets", "open tickets at the window's end", ["status", "age_band"]
        )
        for band in health.backlog:
            backlog.add_metric([band.status, band.age_band], band.n)
        collaborators = _family(
            "collaborator_response_seconds",
            "departments' and partners' response time",
            ["kind", "name", "quantile"],
        )
        for collaborator in health.collaborators:
            _spread(collaborators, collaborator.response, [collaborator.kind, collaborator.name])
        yield from (opened, seconds, within, *ratios.values(), nps, sla, backlog, collaborators)


def _family(name: str, help_: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, help_, labels=labels)


def _spread(family: GaugeMetricFamily, spread: Spread, labels: list[str]) -> None:
    for quantile, value in (("0.5", spread.median_seconds), ("0.9", spread.p90_seconds)):
        if value is not None:
            family.add_metric([*labels, quantile], value)


def _ratio(family: GaugeMetricFamily, share: Share, labels: list[str]) -> None:
    if share.n:
        family.add_metric(labels, share.part / share.n)


def exposition(health: ServiceHealth) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Indicators(health))
    return generate_latest(registry)


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """Requests by method, route template and status, and their latency. Labelled by the
    route's template (`/v1/tickets/{ticket_id}`), never the path: bounded, no ids."""

    def __init__(self) -> None:
        # A registry per app, so that several apps in one process (tests) keep apart.
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            PREFIX + "http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            PREFIX + "http_request_duration_seconds",
            "time to answer an HTTP request",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        # A client may send any method token; only the known ones become series.
        method = method if method in HTTP_METHODS else "OTHER"
        self._requests.labels(method, route, str(status)).inc()
        self._latency.labels(method, route).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
