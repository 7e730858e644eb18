"""POST /v1/tickets: idempotent intake from any channel, the gateway's snapshot."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.database import Pool
from api.access import new_key
from api.app import create_app
from api.client import ticket_id_for
from api.server import build_services
from api.settings import ApiConfig
from tests.api.conftest import BASE_URL, Stack, api_settings, intake
from tests.waiting import eventually
from workflows.contracts import Intake
from workflows.vocabulary import Channel


async def test_a_new_key_opens_a_ticket_and_the_same_key_finds_it(stack: Stack) -> None:
    key = f"gw-{uuid.uuid4()}"
    headers = {**stack.auth("backend"), "Idempotency-Key": key}
    first = await stack.http.post("/v1/tickets", json=intake(), headers=headers)
    assert first.status_code == 201, first.text
    answer = first.json()
    assert answer["ticket_id"] == ticket_id_for(key)
    assert answer["created"] is True
    assert answer["status"] == "new"
    assert answer["classification"]["category"] == "business_inquiry"
    assert answer["classification"]["topic"] == "membership"
    assert answer["tags"] == ["咨詢-會員-B級"]
    # An e-mail ticket: a human reply within 24 h, the B-level SLA and its first warning
    # (75 %), the review clock.
    assert set(answer["deadlines"]) == {"first_response", "sla", "sla_warning", "upgrade_review"}

    again = await stack.http.post("/v1/tickets", json=intake(), headers=headers)
    assert again.status_code == 200
    assert again.json()["ticket_id"] == answer["ticket_id"]
    assert again.json()["created"] is False


async def test_the_key_may_come_in_the_body(stack: Stack) -> None:
    key = f"gw-{uuid.uuid4()}"
    body = intake(idempotency_key=key)
    first = await stack.http.post("/v1/tickets", json=body, headers=stack.auth("agent"))
    assert first.status_code == 201
    # The same key in the header, now: the same ticket.
    again = await stack.http.post(
        "/v1/tickets", json=intake(), headers={**stack.auth("operator"), "Idempotency-Key": key}
    )
    assert (again.status_code, again.json()["ticket_id"]) == (200, first.json()["ticket_id"])


async def test_a_key_is_required_and_must_agree(stack: Stack) -> None:
    missing = await stack.http.post("/v1/tickets", json=intake(), headers=stack.auth("backend"))
    assert missing.status_code == 422
    assert "idempotency key is required" in missing.json()["detail"]
    differ = await stack.http.post(
        "/v1/tickets",
        json=intake(idempotency_key="a-1"),
        headers={**stack.auth("backend"), "Idempotency-Key": "b-2"},
    )
    assert differ.status_code == 422
    assert "differ" in differ.json()["detail"]


async def test_malformed_intakes_are_422_with_the_field_named(stack: Stack) -> None:
    headers = {**stack.auth("backend"), "Idempotency-Key": f"gw-{uuid.uuid4()}"}
    for body, field in [
        (intake(channel="carrier_pigeon"), "channel"),
        (intake(subject=""), "subject"),
        # Control characters are dropped (PostgreSQL cannot store NUL): nothing is left.
        (intake(description="\x00\x1b"), "description"),
        (intake(context={"ip": "203.0.113.9"}), "ip"),  # the gateway's to fill, not the caller's
        ({"channel": "email"}, "customer_id"),
    ]:
        response = await stack.http.post("/v1/tickets", json=body, headers=headers)
        assert response.status_code == 422, body
        problem = response.json()
        assert problem["code"] == "invalid_request"
        assert any(field in item["loc"] for item in problem["detail"]), problem
        assert problem["request_id"] == response.headers["X-Request-ID"]
    broken = await stack.http.post(
        "/v1/tickets", content=b"{not json", headers={**headers, "Content-Type": "application/json"}
    )
    assert broken.status_code == 422


async def test_the_gateway_captures_ip_and_user_agent(stack: Stack) -> None:
    opened = await stack.http.post(
        "/v1/tickets",
        json=intake(),
        headers={
            **stack.auth("backend"),
            "Idempotency-Key": f"gw-{uuid.uuid4()}",
            "User-Agent": "TicketApp/7.3.0 (Android 15)",
        },
    )
    state = await stack.services.tickets.state(opened.json()["ticket_id"])
    assert state.intake.context.ip == "127.0.0.1"  # httpx's ASGI transport's client address
    assert state.intake.context.user_agent == "TicketApp/7.3.0 (Android 15)"
    assert state.intake.context.device_model == "Pixel 8"


async def test_fifty_identical_intakes_at_once_open_one_ticket(stack: Stack) -> None:
    key = f"gw-{uuid.uuid4()}"
    headers = {**stack.auth("backend"), "Idempotency-Key": key}
    body = intake(subject="App 闪退", description="打开订单页就闪退")
    responses = await asyncio.gather(
        *(stack.http.post("/v1/tickets", json=body, headers=headers) for _ in range(50))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 49 + [201]
    assert {r.json()["ticket_id"] for r in responses} == {ticket_id_for(key)}

    ticket_id = ticket_id_for(key)
    await stack.settled(ticket_id)
    assert (await stack.stored_events(ticket_id)).count("ticket_opened") == 1
    claims = await stack.pool.fetchval(
        "SELECT count(*) FROM intake_keys WHERE idempotency_key = $1", key
    )
    assert claims == 1
    row = await eventually(
        lambda: stack.services.events.ticket(ticket_id), lambda found: found is not None
    )
    assert row is not None and row.status == "new"


async def test_a_key_whose_ticket_temporal_forgot_is_not_opened_again(stack: Stack) -> None:
    """After retention Temporal no longer knows a closed ticket's id, PostgreSQL still
    knows its key: the same intake answers 200 with that ticket and starts nothing."""
    key = f"gw-{uuid.uuid4()}"
    ticket_id = ticket_id_for(key)
    # What a ticket closed long ago leaves behind: its claim and its read-model row.
    await stack.pool.execute(
        "INSERT INTO intake_keys (idempotency_key, ticket_id, run_id, channel, created_at)"
        " VALUES ($1, $2, 'run-long-gone', 'email', now() - interval '90 days')",
        key,
        ticket_id,
    )
    await stack.pool.execute(
        "INSERT INTO tickets (ticket_id, status, priority, category, topic, tag, last_seq,"
        " updated_at) VALUES ($1, 'closed', 'B', 'business_inquiry', 'membership',"
        " '咨詢-會員-B級', 9, now() - interval '80 days')",
        ticket_id,
    )

    again = await stack.http.post(
        "/v1/tickets", json=intake(), headers={**stack.auth("backend"), "Idempotency-Key": key}
    )

    assert again.status_code == 200, again.text
    answer = again.json()
    assert (answer["ticket_id"], answer["created"], answer["status"]) == (
        ticket_id,
        False,
        "closed",
    )
    assert answer["classification"]["priority"] == "B"
    assert answer["tags"] == ["咨詢-會員-B級"]
    assert answer["deadlines"] == {}
    with pytest.raises(RPCError) as missing:
        await stack.env.client.get_workflow_handle(ticket_id).describe()
    assert missing.value.status is RPCStatusCode.NOT_FOUND


async def test_the_customers_time_zone_is_checked_and_kept(stack: Stack) -> None:
    bad = await stack.http.post(
        "/v1/tickets",
        json=intake(time_zone="Mars/Olympus"),
        headers={**stack.auth("backend"), "Idempotency-Key": f"tz-{uuid.uuid4()}"},
    )
    assert bad.status_code == 422, bad.text
    assert "Mars/Olympus" in bad.text
    opened = await stack.open(time_zone="Asia/Taipei")
    state = await stack.services.tickets.state(opened["ticket_id"])
    assert state.intake.time_zone == "Asia/Taipei"


async def test_a_chunked_body_is_refused_as_it_streams_in(stack: Stack) -> None:
    """No Content-Length to refuse it by: the limit holds while the body arrives."""
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(64):  # 4 MiB offered, 64 KiB at a time
            sent += 65536
            yield b" " * 65536

    response = await stack.http.post(
        "/v1/tickets",
        content=chunks(),
        headers={**stack.auth("backend"), "Content-Type": "application/json"},
    )
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "too_large"
    assert "256 KiB" in response.json()["detail"]
    assert sent <= 512 * 1024  # it stopped reading soon after the limit, not at 4 MiB


# ---------------------------------------------------------------- the reader's language and zone


async def _acknowledgement(stack: Stack, ticket_id: str) -> dict[str, Any]:
    await stack.settled(ticket_id)
    read = await stack.http.get(f"/v1/tickets/{ticket_id}/deliveries", headers=stack.auth("agent"))
    assert read.status_code == 200, read.text
    acks: list[dict[str, Any]] = [
        row
        for row in read.json()["deliveries"]
        if row["kind"] == "customer_message:acknowledgement"
    ]
    [ack] = acks
    return ack


async def test_a_zh_tw_customer_without_a_zone_is_told_times_in_taipei(stack: Stack) -> None:
    tid = (
        await stack.open(locale="zh-TW", subject="會員怎麼續費", description="會員到期後怎麼續費？")
    )["ticket_id"]
    ack = await _acknowledgement(stack, tid)
    assert "（台北時間）" in ack["text"], ack["text"]
    assert ack["locale"] == "zh-Hant"
    hk = (await stack.open(locale="zh-HK"))["ticket_id"]
    assert "（香港時間）" in (await _acknowledgement(stack, hk))["text"]


async def test_an_intake_without_a_locale_is_answered_in_its_words_script(stack: Stack) -> None:
    english = await stack.open(
        subject="Membership renewal", description="How do I renew my membership after it ends?"
    )
    ack = await _acknowledgement(stack, english["ticket_id"])
    assert ack["text"].startswith("Hello, we have received your request"), ack["text"]
    assert ack["locale"] == "en"
    # No region in the script: the policy's zone.
    assert "(China Time)" in ack["text"]
    view = await stack.http.get(f"/v1/tickets/{english['ticket_id']}", headers=stack.auth("agent"))
    assert view.json()["locale"] == "en"

    traditional = await stack.open(subject="會員怎麼續費", description="請問會員到期後怎麼續費？")
    ack = await _acknowledgement(stack, traditional["ticket_id"])
    assert ack["text"].startswith("您好，我們已收到您的問題"), ack["text"]
    assert ack["locale"] == "zh-Hant"
    assert "（中國時間）" in ack["text"]

    simplified = await stack.open()  # 会员怎么续费
    ack = await _acknowledgement(stack, simplified["ticket_id"])
    assert (ack["locale"], ack["text"][:8]) == ("zh-Hans", "您好，我们已收到")


async def test_a_started_ticket_is_accepted_even_when_no_worker_answers_in_time(
    dev_env: WorkflowEnvironment, pg_pool: Pool
) -> None:
    """The worker is overloaded (here: absent): the ticket is started, and the caller gets
    its id (202) instead of a 503 that would have it resend the intake; a resend under the
    same key gets the same ticket."""
    keys = {"backend": new_key()}
    config = ApiConfig(
        task_queue=f"nobody-polls-{uuid.uuid4()}",
        api=api_settings(keys, temporal_timeout=timedelta(seconds=1)),
    )
    app = create_app(await build_services(config, dev_env.client, pg_pool))
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {keys['backend']}", "Idempotency-Key": f"k-{uuid.uuid4()}"}
    try:
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            first = await http.post("/v1/tickets", json=intake(), headers=headers)
            assert first.status_code == 202, first.text
            ticket_id = first.json()["ticket_id"]
            assert first.headers["location"] == f"/v1/tickets/{ticket_id}"
            assert first.json()["created"] is True
            again = await http.post("/v1/tickets", json=intake(), headers=headers)
            assert again.status_code == 202, again.text
            assert (again.json()["ticket_id"], again.json()["created"]) == (ticket_id, False)
        described = await dev_env.client.get_workflow_handle(ticket_id).describe()
        assert described.status == WorkflowExecutionStatus.RUNNING
    finally:
        await app.state.desk.close()
        with contextlib.suppress(RPCError):
            await dev_env.client.get_workflow_handle(ticket_id).terminate("test done")


async def test_a_new_ticket_starts_ahead_of_the_quiet_and_is_settled_once_it_answers(
    stack: Stack,
) -> None:
    """Started at `person_waiting` so that its first tasks pass a 10:00 herd's, and set to
    `quiet` once the intake is read back, so that tomorrow it is one of the herd."""
    priorities = stack.settings.policy.priorities
    ticket_id = (await stack.open())["ticket_id"]
    handle = stack.env.client.get_workflow_handle(ticket_id)
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    assert started.priority.priority_key == priorities.person_waiting
    described = await handle.describe()
    assert described.raw_description.workflow_execution_info.priority.priority_key == (
        priorities.quiet
    )

    # One history event for it (held back by the server while a workflow task runs).
    async def settled_events() -> int:
        events = (await handle.fetch_history()).events
        return sum(
            e.HasField("workflow_execution_options_updated_event_attributes") for e in events
        )

    assert await eventually(settled_events, lambda n: n >= 1) == 1


async def test_a_ticket_not_read_back_in_time_is_settled_all_the_same(stack: Stack) -> None:
    """The 202 path's order (TicketClient.read_back): no view within the limit, and the
    ticket joins the quiet ones anyway, instead of staying ahead of them for life."""
    tickets = stack.services.tickets
    opened = await tickets.open(
        Intake(
            idempotency_key=f"test-{uuid.uuid4()}",
            channel=Channel.EMAIL,
            customer_id="cust-read-back",
            subject="login fails",
            description="login fails since this morning",
        )
    )
    assert await tickets.read_back(opened, timedelta(0)) is None
    described = await stack.env.client.get_workflow_handle(opened.ticket_id).describe()
    assert described.raw_description.workflow_execution_info.priority.priority_key == (
        stack.settings.policy.priorities.quiet
    )
