"""Access logs: one line per request with its request id, and no personal data."""

from __future__ import annotations

import uuid

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
