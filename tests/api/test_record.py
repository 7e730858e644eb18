"""Nothing lost, nothing doubled: every word of a ticket in its typed record, on the real
dev server, a real worker and real PostgreSQL (issue 8's acceptance)."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from activities.database import Pool
from api.app import create_app
from api.server import build_services
from api.settings import ApiConfig
from tests.api.conftest import BASE_URL, Stack, api_settings, intake
from tests.api.test_partner_callbacks import URL as CALLBACK_URL
from tests.api.test_partner_callbacks import headers as signed
from tests.api.test_partner_callbacks import payload as callback_body
from tests.waiting import eventually
from workers.main import build_worker

RESOLVE = {
    "result_kind": "technical",
    "message": "已修复, 请重试",
    "root_cause": "產品缺陷-提現流程",
}


async def _words(stack: Stack, ticket_id: str, event_type: str) -> list[str]:
    rows = await stack.pool.fetch(
        "SELECT data FROM ticket_events WHERE ticket_id = $1 AND type = $2 ORDER BY seq",
        ticket_id,
        event_type,
    )
    return [row["data"]["message"] for row in rows]


async def _replies_sent(pool: Pool, ticket_id: str) -> list[tuple[str, int]]:
    rows = await pool.fetch(
        "SELECT payload -> 'params' ->> 'text' AS text, event_seq FROM outbox"
        " WHERE ticket_id = $1 AND kind = 'customer_message:agent_reply' ORDER BY id",
        ticket_id,
    )
    return [(row["text"], row["event_seq"]) for row in rows]


async def test_three_replies_are_all_kept_in_order(stack: Stack) -> None:
    tid = (await stack.open())["ticket_id"]
    said = ["您好, 我们在查看", "请问是哪张卡?", "已为您处理, 请重试"]
    for text in said:
        response = await stack.act(tid, "responses", {"message": text})
        assert response.status_code == 200, response.text
        assert response.headers["Action-Id"]
    await stack.settled(tid)

    assert await _words(stack, tid, "agent_replied") == said
    sent = await _replies_sent(stack.pool, tid)
    assert [text for text, _ in sent] == said
    # Each row names the event that sent it, and no two rows share an event.
    seqs = await stack.pool.fetch(
        "SELECT seq FROM ticket_events WHERE ticket_id = $1 AND type = 'agent_replied'"
        " ORDER BY seq",
        tid,
    )
    assert [seq for _, seq in sent] == [row["seq"] for row in seqs]

    thread = await stack.http.get(f"/v1/tickets/{tid}/thread", headers=stack.auth("agent"))
    assert thread.status_code == 200, thread.text
    replies = [e for e in thread.json()["entries"] if e["kind"] == "agent_replied"]
    assert [e["text"] for e in replies] == said
    assert {(e["audience"], e["channel"], e["actor"]["role"]) for e in replies} == {
        ("customer", "email", "agent")
    }


async def test_concurrent_replies_each_leave_one_event_and_one_row(stack: Stack) -> None:
    """60 replies at once over three tickets; a 503 is sent again with its action id, as a
    client should, until the ticket has taken it."""
    tickets = [(await stack.open())["ticket_id"] for _ in range(3)]
    replies = [(tickets[n % 3], f"reply {n} {uuid.uuid4().hex[:6]}") for n in range(60)]

    async def reply(ticket_id: str, text: str) -> None:
        body = {"message": text, "action_id": f"a-{uuid.uuid4().hex}"}
        for _ in range(20):  # bounded: each try waits at most the API's Temporal timeout
            response = await stack.act(ticket_id, "responses", body)
            if response.status_code != 503:
                break
        assert response.status_code == 200, response.text

    await asyncio.gather(*(reply(tid, text) for tid, text in replies))
    for tid in tickets:
        await stack.settled(tid)
        expected = sorted(text for owner, text in replies if owner == tid)
        assert sorted(await _words(stack, tid, "agent_replied")) == expected
        assert sorted(text for text, _ in await _replies_sent(stack.pool, tid)) == expected


async def test_a_full_lifecycle_reads_back_as_its_conversation(stack: Stack) -> None:
    tid = (
        await stack.open(
            subject="提现未到账", description="昨天提现 500 元, 至今未到账", channel="app_chat"
        )
    )["ticket_id"]
    expected_by = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    steps: list[tuple[str, dict[str, Any], str]] = [
        ("responses", {"message": "您好, 正在为您查询"}, "agent"),
        ("dispatches", {"departments": ["finance"], "note": "查这笔提现的通道状态"}, "agent"),
        (
            "partner-engagements",
            {"partner": "sf-express", "problem": "请核对回单", "expected_by": expected_by},
            "agent",
        ),
        (
            "progress",
            {"department": "finance", "note": "通道已恢复", "work_order_done": True},
            "department:finance",
        ),
        ("milestones", {"milestone": "cause_located", "note": "银行通道故障"}, "agent"),
    ]
    for route, body, role in steps:
        response = await stack.act(tid, route, body, role=role)
        assert response.status_code == 200, response.text
    answer = callback_body(tid, answer="回单已核对, 款项已退回")
    called = await stack.http.post(CALLBACK_URL, content=answer, headers=signed(stack, answer))
    assert called.status_code == 202, called.text
    await eventually(
        lambda: stack.services.tickets.view(tid), lambda v: v.status != "waiting_on_partner"
    )
    resolved = await stack.act(tid, "resolution", RESOLVE)
    assert resolved.status_code == 200, resolved.text
    replied = await stack.http.post(
        f"/v1/tickets/{tid}/customer-replies",
        json={"reply_id": "r-1", "kind": "solved", "text": "收到了, 谢谢"},
        headers=stack.auth("backend"),
    )
    assert replied.status_code == 202, replied.text
    await eventually(lambda: stack.services.tickets.view(tid), lambda v: v.status == "closed")
    await stack.settled(tid)

    thread = await stack.http.get(f"/v1/tickets/{tid}/thread", headers=stack.auth("agent"))
    entries = thread.json()["entries"]
    said = [(e["actor"]["role"], e["audience"], e["text"]) for e in entries]
    assert said == [
        ("customer", "customer", "提现未到账\n\n昨天提现 500 元, 至今未到账"),
        ("agent", "customer", "您好, 正在为您查询"),
        ("agent", "internal", "查这笔提现的通道状态"),
        ("agent", "internal", "请核对回单"),
        # What the system said on its own comes from the outbox, after its event.
        ("system", "customer", entries[4]["text"]),
        ("department", "internal", "通道已恢复"),
        ("agent", "internal", "银行通道故障"),
        ("partner", "internal", "回单已核对, 款项已退回"),
        ("agent", "customer", "已修复, 请重试"),
        ("system", "customer", entries[9]["text"]),
        ("customer", "customer", "收到了, 谢谢"),
        ("system", "customer", entries[11]["text"]),
    ]
    assert [e["kind"] for e in entries if e["actor"]["role"] == "system"] == [
        "message:partner_handoff",
        "message:confirmation_request",
        "message:satisfaction_survey",
    ]
    instants = [e["at"] for e in entries]
    assert instants == sorted(instants)
    assert {e["channel"] for e in entries if e["audience"] == "customer"} == {"app_chat"}

    view = (await stack.http.get(f"/v1/tickets/{tid}", headers=stack.auth("agent"))).json()
    assert (view["subject"], view["description"], view["channel"]) == (
        "提现未到账",
        "昨天提现 500 元, 至今未到账",
        "app_chat",
    )
    assert view["last_message"]["text"] == "收到了, 谢谢"
    assert view["last_message"]["actor"]["role"] == "customer"


async def test_a_department_key_records_its_own_identity(stack: Stack) -> None:
    tid = (await stack.open())["ticket_id"]
    dispatched = await stack.act(tid, "dispatches", {"departments": ["tech"], "note": "查日志"})
    assert dispatched.status_code == 200, dispatched.text
    spoofed = await stack.act(
        tid,
        "progress",
        {"department": "tech", "note": "done", "actor_id": "agent-boss-7"},
        role="department:tech",
    )
    assert spoofed.status_code == 403, spoofed.text
    assert "actor_id" in spoofed.json()["detail"]
    posted = await stack.act(
        tid, "progress", {"department": "tech", "note": "日志已查"}, role="department:tech"
    )
    assert posted.status_code == 200, posted.text
    # Staff consoles may name the person acting.
    named = await stack.act(tid, "assignment", {"agent_id": "agent-3", "actor_id": "lead-1"})
    assert named.status_code == 200, named.text
    await stack.settled(tid)
    rows = await stack.pool.fetch(
        "SELECT type, actor_id FROM ticket_events WHERE ticket_id = $1"
        " AND type IN ('progress_posted', 'assigned')",
        tid,
    )
    actors = {row["type"]: row["actor_id"] for row in rows}
    assert actors == {"progress_posted": "test-department-tech", "assigned": "lead-1"}


async def test_an_action_id_names_one_action(stack: Stack) -> None:
    tid = (await stack.open())["ticket_id"]
    reply = {"message": "您好", "action_id": "console-7"}
    first = await stack.act(tid, "responses", reply)
    again = await stack.act(tid, "responses", reply)
    assert (first.status_code, again.status_code) == (200, 200)
    other = await stack.act(tid, "assignment", {"agent_id": "agent-9", "action_id": "console-7"})
    assert other.status_code == 409, other.text
    assert "console-7" in other.json()["detail"]
    await stack.settled(tid)
    assert await _words(stack, tid, "agent_replied") == ["您好"]
    assert "assigned" not in await stack.stored_events(tid)


async def test_bad_list_input_is_a_4xx_never_a_500(stack: Stack) -> None:
    agent = stack.auth("agent")
    forged: list[list[Any]] = [
        ["attention", "2026-01-01T00:00:00+00:00", "ticket-" + "0" * 24, None, 2**40],
        ["attention", "9999-12-31T23:59:00-23:00", "ticket-" + "0" * 24, None, 1],
        ["attention", "2026-01-01T00:00:00+00:00", "ticket-\u0000", None, 1],
        ["newest", "0001-01-01T00:00:00+23:00", "ticket-" + "0" * 24],
    ]
    for key in forged:
        cursor = base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")
        sort = str(key[0])
        response = await stack.http.get(
            "/v1/tickets", params={"cursor": cursor, "sort": sort}, headers=agent
        )
        assert response.status_code == 422, (key, response.text)
    for params in ({"assignee": "a\x00b"}, {"department": "a\x00b"}):
        response = await stack.http.get("/v1/tickets", params=params, headers=agent)
        assert response.status_code == 422, (params, response.text)


# ---------------------------------------------------------------- a worker that goes away


@pytest.fixture
async def lonely(stack: Stack) -> AsyncIterator[tuple[httpx.AsyncClient, str, Pool]]:
    """An API with a short Temporal timeout, on a task queue of its own (the test stops and
    starts its worker)."""
    task_queue = f"lonely-{uuid.uuid4()}"
    config = ApiConfig(
        task_queue=task_queue,
        policy=stack.settings.policy,
        api=api_settings(stack.keys, temporal_timeout=timedelta(seconds=2)),
    )
    services = await build_services(config, stack.env.client, stack.pool)
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http, task_queue, stack.pool


async def test_an_update_the_worker_never_took_answers_503_and_applies_once(
    stack: Stack, lonely: tuple[httpx.AsyncClient, str, Pool]
) -> None:
    http, task_queue, pool = lonely
    agent = stack.auth("agent")
    worker = build_worker(stack.env.client, task_queue, pool, stack.settings.policy)
    running = asyncio.create_task(worker.run())
    opened = await http.post(
        "/v1/tickets",
        json=intake(),
        headers={**stack.auth("backend"), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert opened.status_code == 201, opened.text
    tid = opened.json()["ticket_id"]
    await eventually(
        lambda: pool.fetchval("SELECT count(*) FROM ticket_events WHERE ticket_id = $1", tid),
        lambda n: bool(n),
    )
    await worker.shutdown()  # the worker is gone: nobody runs the ticket's updates
    await running

    body = {"message": "请稍等, 我们马上处理", "action_id": "console-42"}
    timed_out = await http.post(f"/v1/tickets/{tid}/responses", json=body, headers=agent)
    assert timed_out.status_code == 503, timed_out.text
    assert int(timed_out.headers["Retry-After"]) > 0
    assert timed_out.headers["Action-Id"] == "console-42"
    assert "console-42" in timed_out.json()["detail"]

    worker = build_worker(stack.env.client, task_queue, pool, stack.settings.policy)
    running = asyncio.create_task(worker.run())
    try:
        for _ in range(30):  # the new worker picks the ticket up once its old one is forgotten
            resent = await http.post(f"/v1/tickets/{tid}/responses", json=body, headers=agent)
            if resent.status_code != 503:
                break
        assert resent.status_code == 200, resent.text
        view = resent.json()
        stored = await eventually(
            lambda: pool.fetchval("SELECT count(*) FROM ticket_events WHERE ticket_id = $1", tid),
            lambda n: n == view["events_recorded"],
        )
        assert stored == view["events_recorded"]
        replies = await pool.fetch(
            "SELECT data ->> 'message' AS said FROM ticket_events"
            " WHERE ticket_id = $1 AND type = 'agent_replied'",
            tid,
        )
        assert [r["said"] for r in replies] == ["请稍等, 我们马上处理"]
        assert len(await _replies_sent(pool, tid)) == 1
    finally:
        await stack.env.client.get_workflow_handle(tid).terminate("test done")
        await worker.shutdown()
        await running
