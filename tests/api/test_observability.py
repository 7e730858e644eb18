"""Access logs and HTTP metrics: one line per request with its request id, series by\nroute template; no personal data in either."""

from __future__ import annotations

import uuid

from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from tests.api.conftest import Stack, intake


async def test_access_log_has_request_ids_and_no_personal_data(stack: Stack) -> None:
    secret_email = "li.lei@example.com"
    body = intake(description=f"请联系我 {secret_email} 或 13800138000")
    with capture_logs() as logs:
        opened = await stack.http.post(
            "/v1/tickets",
            json=body,
            headers={
                **stack.auth("backend"),
                "Idempotency-Key": f"gw-{uuid.uuid4()}",
                "User-Agent": "TicketApp/7.3.0",
                "X-Request-ID": "gateway-req-0001",
            },
        )
        await stack.http.get(
            f"/v1/tickets/{secret_email}", headers=stack.auth("agent")
        )  # junk in the path
        await stack.http.get("/v1/tickets", params={"department": secret_email})  # no key
    assert opened.headers["X-Request-ID"] == "gateway-req-0001"

    lines = [entry for entry in logs if entry["event"] == "http request"]
    assert [line["status"] for line in lines] == [201, 404, 401]
    first = lines[0]
    assert first["request_id"] == "gateway-req-0001"
    assert first["route"] == "/v1/tickets"
    assert first["caller"] == "test-backend"
    assert first["role"] == "backend"
    assert isinstance(first["duration_ms"], float)
    assert lines[1]["route"] == "/v1/tickets/{ticket_id}"
    assert "ticket_id" not in lines[1]
    assert len({line["request_id"] for line in lines}) == 3

    everything = repr(logs)
    for personal in (secret_email, "13800138000", "127.0.0.1", "TicketApp"):
        assert personal not in everything


async def test_http_requests_and_latencies_are_prometheus_metrics(stack: Stack) -> None:
    """By route template, never by path: a ticket id or a customer's words never become a
    label (unbounded series, personal data)."""
    ticket_id = (await stack.open())["ticket_id"]
    await stack.http.get(f"/v1/tickets/{ticket_id}", headers=stack.auth("agent"))
    await stack.http.get("/v1/tickets/not-a-ticket-张三", headers=stack.auth("agent"))
    scraped = await stack.http.get("/metrics", headers=stack.auth("manager"))
    assert scraped.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
    requests = families["ticketflow_http_requests"].samples
    shown = [
        s
        for s in requests
        if s.name.endswith("_total")
        and s.labels["route"] == "/v1/tickets/{ticket_id}"
        and s.labels["method"] == "GET"
    ]
    statuses = {s.labels["status"] for s in shown}
    assert "200" in statuses and any(status.startswith("4") for status in statuses)
    opened = [
        s
        for s in requests
        if s.name.endswith("_total")
        and s.labels == {"method": "POST", "route": "/v1/tickets", "status": "201"}
    ]
    assert opened and opened[0].value >= 1
    latency = families["ticketflow_http_request_duration_seconds"].samples
    assert any(s.name.endswith("_count") and s.labels["route"] == "/v1/tickets" for s in latency)
    assert ticket_id not in scraped.text and "张三" not in scraped.text
