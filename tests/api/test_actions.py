"""One route per action: 200 with the ticket's view, 409 refused, 422 malformed, 404
unknown, 503 when Temporal or PostgreSQL cannot be reached."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from activities.database import create_pool, migrate, schema_for_run
from api.app import create_app
from api.client import TicketClient
from tests.api.conftest import BASE_URL, Stack, intake, unknown_ticket
from tests.codec_keys import CONVERTER
from tests.waiting import eventually

RESOLVE = {
    "result_kind": "technical",
    "message": "已修复, 请重试",
    "root_cause": "產品缺陷-支付流程",
}


async def test_each_action_route_applies_its_update(stack: Stack) -> None:
    tid = (await stack.open(subject="无法提现", description="提现一直失败, 钱没到账"))["ticket_id"]
    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    steps: list[tuple[str, dict[str, object], str]] = [
        ("responses", {"message": "您好, 我们正在查看"}, "in_progress"),
        (
            "classification",
            {
                "category": "technical_fault",
                "topic": "withdrawal",
                "priority": "E",
                "reason": "多人",
            },
            "in_progress",
        ),
        ("assignment", {"agent_id": "agent-9"}, "in_progress"),
        (
            "dispatches",
            {"departments": ["tech", "finance"], "note": "查提现通道"},
            "waiting_on_department",
        ),
        (
            "milestones",
            {"milestone": "temporary_fix", "note": "切换备用通道"},
            "waiting_on_department",
        ),
        (
            "progress",
            {"department": "tech", "note": "已修复", "work_order_done": True},
            "waiting_on_department",
        ),
        (
            "progress",
            {"department": "finance", "note": "已补款", "work_order_done": True},
            "in_progress",
        ),
        (
            "partner-engagements",
            {"partner": "sf-express", "problem": "回单丢失", "expected_by": later},
            "waiting_on_partner",
        ),
    ]
    for route, body, status in steps:
        response = await stack.act(tid, route, body)
        assert response.status_code == 200, (route, response.text)
        assert response.json()["status"] == status, route
    view = response.json()
    assert view["classification"]["priority"] == "E"
    assert view["assignee"] == "agent-9"
    assert view["departments"] == ["finance", "tech"]

    await stack.settled(tid)
    events = await stack.pool.fetch(
        "SELECT type, actor_id, actor_role FROM ticket_events WHERE ticket_id = $1 ORDER BY seq",
        tid,
    )
    responded = next(e for e in events if e["type"] == "first_responded")
    # The actor is the key's holder, with the role the key carries.
    assert (responded["actor_id"], responded["actor_role"]) == ("test-agent", "agent")


async def test_resolve_close_and_review_decisions(stack: Stack) -> None:
    tid = (await stack.open())["ticket_id"]
    # No upgrade review was convened: nothing to decide.
    refused = await stack.act(tid, "review-decisions", {"decision": "继续观察"})
    assert refused.status_code == 409
    assert refused.json()["detail"] == "no upgrade review is waiting for a decision"

    resolved = await stack.act(tid, "resolution", RESOLVE, role="operator")
    assert resolved.status_code == 200
    assert resolved.json()["status"] == "resolved_awaiting_confirmation"
    again = await stack.act(tid, "resolution", RESOLVE)
    assert again.status_code == 409
    assert again.json()["code"] == "action_rejected"
    assert "already resolved" in again.json()["detail"]

    other = (await stack.open())["ticket_id"]
    closed = await stack.act(
        other, "closure", {"long_term_plan": "下个版本支持", "root_cause": "需求缺口-會員續費"}
    )
    assert closed.status_code == 200
    assert closed.json()["status"] == "closed"
    # Acting on a closed ticket: the ticket (or Temporal, once the run ended) says so.
    late = await stack.act(other, "responses", {"message": "还在吗"})
    assert late.status_code == 409
    assert "closed" in late.json()["detail"]


async def test_refusals_are_409_with_the_tickets_reason(stack: Stack) -> None:
    tid = (await stack.open())["ticket_id"]
    for route, body, reason in [
        ("dispatches", {"departments": ["legal"], "note": "?"}, "unknown department(s) legal"),
        ("progress", {"department": "tech", "note": "?"}, "holds no open work order"),
        ("milestones", {"milestone": "resolved", "note": "x"}, "use the resolve action"),
        ("closure", {"long_term_plan": "later"}, "root-cause tag"),
        ("assignment", {"agent_id": "a-1"}, None),
        ("assignment", {"agent_id": "a-1"}, "already assigned to a-1"),
    ]:
        response = await stack.act(tid, route, body)
        if reason is None:
            assert response.status_code == 200
            continue
        assert response.status_code == 409, (route, response.text)
        assert reason in response.json()["detail"]


async def test_malformed_actions_are_422(stack: Stack) -> None:
    tid = (await stack.open())["ticket_id"]
    for route, body in [
        ("responses", {}),
        ("responses", {"message": "   "}),
        (
            "classification",
            {"category": "weather", "topic": "login", "priority": "A", "reason": "x"},
        ),
        ("resolution", {**RESOLVE, "root_cause": "no tag"}),
        ("dispatches", {"departments": [], "note": "x"}),
        (
            "partner-engagements",
            {"partner": "dhl", "problem": "x", "expected_by": "2030-01-01T00:00:00"},
        ),
        ("responses", {"message": "hi", "actor": {"id": "boss", "role": "supervisor"}}),
    ]:
        response = await stack.act(tid, route, body)
        assert response.status_code == 422, (route, body, response.text)
        assert response.json()["code"] == "invalid_request"


async def test_unknown_tickets_are_404(stack: Stack) -> None:
    for ticket_id in (unknown_ticket(), "not-a-ticket", "ticket-" + "0" * 24):
        response = await stack.act(ticket_id, "responses", {"message": "hi"})
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "ticket_not_found"
        shown = await stack.http.get(f"/v1/tickets/{ticket_id}", headers=stack.auth("agent"))
        assert shown.status_code == 404
    reply = await stack.http.post(
        f"/v1/tickets/{unknown_ticket()}/customer-replies",
        json={"reply_id": "r-1", "kind": "message", "text": "在吗"},
        headers=stack.auth("backend"),
    )
    assert reply.status_code == 404
    missing_route = await stack.http.get("/v1/nothing-here", headers=stack.auth("agent"))
    assert (missing_route.status_code, missing_route.json()["code"]) == (404, "not_found")


async def test_an_action_id_makes_a_resent_action_count_once(stack: Stack) -> None:
    tid = (await stack.open())["ticket_id"]
    body = {"message": "收到", "action_id": "console-42"}
    first = await stack.act(tid, "responses", body)
    second = await stack.act(tid, "responses", body)
    assert first.status_code == second.status_code == 200
    assert first.json()["events_recorded"] == second.json()["events_recorded"]
    history = await stack.services.tickets.handle(tid).fetch_history()
    accepted = [
        e
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    assert len(accepted) == 1


@pytest.fixture
async def unreachable(stack: Stack, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The same application, but Temporal and PostgreSQL are gone."""
    dead_temporal = await Client.connect("127.0.0.1:1", lazy=True, data_converter=CONVERTER)
    closed_pool = await create_pool(database_url, min_size=0)
    await closed_pool.close()
    services = dataclasses.replace(
        stack.services,
        tickets=TicketClient(dead_temporal, task_queue="nowhere", policy=stack.settings.policy),
        pool=closed_pool,
        events=type(stack.services.events)(closed_pool),
    )
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


async def test_unreachable_dependencies_are_503_with_retry_after(
    stack: Stack, unreachable: httpx.AsyncClient
) -> None:
    agent = stack.auth("agent")
    for method, path, body in [
        ("POST", "/v1/tickets", intake(idempotency_key="k-503")),
        ("POST", f"/v1/tickets/{unknown_ticket()}/responses", {"message": "hi"}),
        ("GET", f"/v1/tickets/{unknown_ticket()}", None),
        ("GET", f"/v1/tickets/{unknown_ticket()}/events", None),
        ("GET", "/v1/tickets", None),
    ]:
        response = await unreachable.request(method, path, json=body, headers=agent)
        assert response.status_code == 503, (path, response.text)
        assert response.headers["Retry-After"] == "5"
        assert response.json()["code"] == "unavailable"
    ready = await unreachable.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["temporal"].startswith("unavailable")
    assert ready.json()["checks"]["postgres"].startswith("unavailable")


async def test_a_question_to_the_customer_pauses_the_sla_until_they_answer(stack: Stack) -> None:
    tid = (await stack.open(subject="无法提现", description="提现一直失败"))["ticket_id"]
    asked = await stack.act(
        tid, "responses", {"message": "请问提现到哪张卡？", "awaiting_customer": True}
    )
    assert asked.status_code == 200, asked.text
    view = asked.json()
    assert view["status"] == "waiting_on_customer"
    assert view["sla_paused_since"] is not None and view["deadlines"]["sla"] is None
    await stack.settled(tid)

    listed = await stack.http.get(
        "/v1/tickets", params={"paused": "true"}, headers=stack.auth("agent")
    )
    assert tid in [item["ticket_id"] for item in listed.json()["items"]]
    answered = await stack.http.post(
        f"/v1/tickets/{tid}/customer-replies",
        json={"reply_id": "r-1", "kind": "message", "text": "招行的卡"},
        headers=stack.auth("backend"),
    )
    assert answered.status_code == 202, answered.text

    async def resumed() -> list[dict[str, Any]]:
        listed = await stack.http.get(
            "/v1/tickets", params={"paused": "false"}, headers=stack.auth("agent")
        )
        return [item for item in listed.json()["items"] if item["ticket_id"] == tid]

    # The reply is a signal: the ticket records it a moment after the 202.
    [row] = await eventually(resumed, bool)
    assert row["sla_paused_since"] is None and row["sla_paused_seconds"] > 0
    assert row["status"] == "in_progress" and row["due_at"] is not None

    # A checkpoint further than the policy allows is refused with the ticket's reason.
    refused = await stack.act(
        tid, "review-decisions", {"decision": "wait", "next_checkpoint": "P90D"}
    )
    assert refused.status_code == 409
    assert "no upgrade review is waiting" in refused.json()["detail"]


async def test_an_api_on_an_unmigrated_database_is_not_ready_and_never_answers_500(
    stack: Stack, database_url: str
) -> None:
    """Started before any worker migrated its database: 503 with the reason, not 500s."""
    async with schema_for_run(database_url, "bare") as schema:
        pool = await create_pool(schema.url)
        try:
            services = dataclasses.replace(
                stack.services,
                pool=pool,
                events=type(stack.services.events)(pool),
            )
            transport = httpx.ASGITransport(app=create_app(services))
            async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
                ready = await http.get("/readyz")
                assert ready.status_code == 503
                assert ready.json()["checks"]["schema"].startswith(
                    "migrations missing: 0001_event_store"
                )
                assert "ticketflow migrate" in ready.json()["checks"]["schema"]
                listed = await http.get("/v1/tickets", headers=stack.auth("agent"))
                assert listed.status_code == 503, listed.text
                assert "not migrated" in listed.json()["detail"]
                await migrate(pool)
                assert (await http.get("/readyz")).status_code == 200
        finally:
            await pool.close()
