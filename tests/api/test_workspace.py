"""The agents' workspace over HTTP (the browser's view is in test_workspace_browser.py):
signing in, CSRF, the queue's views and counts, the ticket page, the forms of the table
of actions, a department's scope, and the live stream over real HTTP."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest

from tests.api.conftest import Stack

CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')
HTML = {"Accept": "text/html"}
pytestmark = pytest.mark.usefixtures("database_url")


def browser_like(stack: Stack, base_url: str | None = None) -> httpx.AsyncClient:
    if base_url is not None:
        # Idle connections dropped before uvicorn's keep-alive closes them (a ReadError).
        return httpx.AsyncClient(base_url=base_url, limits=httpx.Limits(keepalive_expiry=1.0))
    return httpx.AsyncClient(transport=stack.http._transport, base_url=str(stack.http.base_url))


async def sign_in(
    stack: Stack, role: str, base_url: str | None = None
) -> tuple[httpx.AsyncClient, str]:
    """A browser-like client signed in with the role's key, and its CSRF token."""
    client = browser_like(stack, base_url)
    form = await client.get("/app/signin")
    assert form.status_code == 200
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    signed = await client.post(
        "/app/signin", data={"csrf": token.group(1), "key": stack.keys[role]}
    )
    assert signed.status_code == 303, signed.text
    page = await client.get("/app/", headers=HTML)
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found is not None
    return client, found.group(1)


async def test_an_agent_signs_in_acts_as_themself_and_signs_out(stack: Stack) -> None:
    client, csrf = await sign_in(stack, "agent")
    session = next(c for c in client.cookies.jar if c.name == "tf_session")
    assert session.has_nonstandard_attr("HttpOnly")
    assert session.path == "/app"
    assert stack.keys["agent"] not in str(session.value)

    ticket = (
        await stack.open(tier="vip", subject="支付失败 扣款了", description="付款失败但扣款了")
    )["ticket_id"]
    await stack.settled(ticket)
    page = await client.get(f"/app/tickets/{ticket}", headers=HTML)
    assert page.status_code == 200, page.text
    assert "付款失败但扣款了" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["server-timing"].startswith("app;dur=")

    # A note, sent twice under one action id (a retry after a timeout): applied once, and
    # recorded as the key's person, whatever the form says.
    for _ in range(2):
        note = await client.post(
            f"/app/tickets/{ticket}/actions/add_note",
            data={
                "csrf": csrf,
                "action_id": "ws-note-once",
                "text": "先查扣款记录",
                "actor_id": "x",
            },
        )
        assert note.status_code == 200, note.text
        assert note.json()["action_id"] == "ws-note-once"
    await stack.settled(ticket)
    notes = await stack.pool.fetch(
        "SELECT actor_id FROM ticket_events WHERE ticket_id = $1 AND type = 'note_added'", ticket
    )
    assert [row["actor_id"] for row in notes] == ["test-agent"]

    # Its record, a click away with the same session: the note among the typed events,
    # the acknowledgement among the deliveries, the customer's IP with its host hidden.
    events = await client.get(f"/app/tickets/{ticket}/events", headers=HTML)
    assert events.status_code == 200
    assert "note_added" in events.text and "先查扣款记录" in events.text
    deliveries = await client.get(f"/app/tickets/{ticket}/deliveries", headers=HTML)
    assert deliveries.status_code == 200
    assert "customer_message:acknowledgement" in deliveries.text
    # (The intake took the caller's own address: the test transport's 127.0.0.1.)
    for shown in (page.text, events.text):
        assert "127.0.0.x" in shown and "127.0.0.1" not in shown

    forged = await client.post(
        f"/app/tickets/{ticket}/actions/add_note",
        data={"csrf": "forged", "action_id": "ws-note-2", "text": "x"},
    )
    assert forged.status_code == 403
    assert forged.json()["code"] == "csrf"
    elsewhere = await client.post(
        f"/app/tickets/{ticket}/actions/add_note",
        data={"action_id": "ws-note-3", "text": "x"},
        headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
    )
    assert elsewhere.status_code == 403

    out = await client.post("/app/signout", data={"csrf": csrf})
    assert out.status_code == 303
    assert (await client.get("/app/", headers=HTML)).status_code == 303
    assert (await client.get("/app/queue")).status_code == 401


async def test_only_workspace_keys_sign_in_and_only_from_the_form(stack: Stack) -> None:
    client = browser_like(stack)
    form = await client.get("/app/signin")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    for key in ("tfk_unknown", stack.keys["manager"], stack.keys["backend"]):
        refused = await client.post("/app/signin", data={"csrf": token.group(1), "key": key})
        assert refused.status_code == 401
        assert "tf_session" not in refused.headers.get("set-cookie", "")
    # A sign-in posted from elsewhere carries no sign-in cookie of ours.
    stranger = browser_like(stack)
    cross = await stranger.post("/app/signin", data={"csrf": "x", "key": stack.keys["agent"]})
    assert cross.status_code == 403


async def test_the_queue_counts_and_shows_each_view(stack: Stack) -> None:
    client, _ = await sign_in(stack, "agent")
    mine = (await stack.open(subject="会员怎么续费"))["ticket_id"]
    assigned = await stack.act(mine, "assignment", {"agent_id": "test-agent"})
    assert assigned.status_code == 200
    nobody = (await stack.open(subject="订单查不到"))["ticket_id"]
    await stack.settled(mine)
    await stack.settled(nobody)

    page = await client.get("/app/?view=mine", headers=HTML)
    assert page.status_code == 200
    shown_mine = await every_row(client, "view=mine")
    assert mine in shown_mine and nobody not in shown_mine
    unassigned = await every_row(client, "view=unassigned")
    assert nobody in unassigned and mine not in unassigned

    # Every count is the read model's own.
    expected = {
        "mine": "assignee = 'test-agent' AND status <> 'resolved_awaiting_confirmation'",
        "unassigned": "assignee IS NULL AND status <> 'resolved_awaiting_confirmation'",
        "waiting_customer": "status IN ('waiting_on_customer', 'resolved_awaiting_confirmation')",
        "waiting_department": "status = 'waiting_on_department'",
        "all": "true",
    }

    async def counted() -> dict[str, int]:
        return {
            view: await stack.pool.fetchval(
                f"SELECT count(*) FROM tickets WHERE status <> 'closed' AND {where}"
            )
            for view, where in expected.items()
        }

    # (Tickets of the session's other tests may change meanwhile: the page's counts are
    # those just before it or just after.)
    before = await counted()
    body = (await client.get("/app/queue?view=all")).text
    after = await counted()
    for view in expected:
        shown = re.search(rf'data-count="{view}">(\d+)<', body)
        assert shown is not None, view
        assert int(shown.group(1)) in {before[view], after[view]}, view

    # Resolved, the ticket waits for the customer's confirmation: no longer work of mine.
    resolved = await stack.act(
        mine,
        "resolution",
        {"result_kind": "suggestion", "message": "在设置里续费", "root_cause": "咨询-会员"},
    )
    assert resolved.status_code == 200, resolved.text
    await stack.settled(mine)
    assert mine not in await every_row(client, "view=mine")
    assert mine in await every_row(client, "view=waiting_customer")

    # Filters narrow the rows; a value outside the vocabulary is a 422, not a 500.
    tag = await _tag(stack, mine)
    narrowed = await every_row(client, urlencode({"view": "all", "tag": tag}))
    assert mine in narrowed
    tags = await stack.pool.fetch(
        "SELECT DISTINCT tag FROM tickets WHERE ticket_id = ANY($1::text[])", list(narrowed)
    )
    assert [row["tag"] for row in tags] == [tag]
    assert (await client.get("/app/queue?view=all&priority=Z")).status_code == 422


async def every_row(client: httpx.AsyncClient, query: str) -> set[str]:
    """The tickets of every page of a view (the session's other tests leave many open)."""
    found: set[str] = set()
    for _ in range(100):
        part = (await client.get(f"/app/queue?{query}")).text
        found |= set(re.findall(r'<tr data-ticket="([^"]+)"', part))
        more = re.search(r'href="\?([^"]*cursor=[^"]+)"', part)
        if more is None:
            return found
        query = more.group(1).replace("&amp;", "&")
    raise AssertionError(f"more than 100 pages of {query}")


async def _tag(stack: Stack, ticket_id: str) -> str:
    tag = await stack.pool.fetchval("SELECT tag FROM tickets WHERE ticket_id = $1", ticket_id)
    assert isinstance(tag, str)
    return tag


async def test_forms_refuse_with_the_tickets_sentence_or_the_field_named(stack: Stack) -> None:
    client, csrf = await sign_in(stack, "agent")
    ticket = (await stack.open())["ticket_id"]
    refused = await client.post(
        f"/app/tickets/{ticket}/actions/record_review_decision",
        data={"csrf": csrf, "decision": "继续观察"},
    )
    assert refused.status_code == 409
    assert refused.json()["detail"] == "no upgrade review is waiting for a decision"
    incomplete = await client.post(
        f"/app/tickets/{ticket}/actions/dispatch",
        data={"csrf": csrf, "note": "查"},
        headers={"Accept-Language": "en"},
    )
    assert incomplete.status_code == 422
    assert "Departments" in incomplete.json()["detail"]
    unknown = await client.post(f"/app/tickets/{ticket}/actions/vanish", data={"csrf": csrf})
    assert unknown.status_code == 404


async def test_a_department_sees_and_answers_only_its_own_work_orders(stack: Stack) -> None:
    ours = (await stack.open(subject="提现失败"))["ticket_id"]
    theirs = (await stack.open(subject="退款没到账"))["ticket_id"]
    for ticket, department in ((ours, "tech"), (theirs, "finance")):
        sent = await stack.act(ticket, "dispatches", {"departments": [department], "note": "查"})
        assert sent.status_code == 200, sent.text
        await stack.settled(ticket)
    client, csrf = await sign_in(stack, "department:tech")

    queue = (await client.get("/app/queue?view=all&department=finance")).text
    assert ours in queue and theirs not in queue
    for part in ("", "/events", "/deliveries"):
        refused = await client.get(f"/app/tickets/{theirs}{part}", headers=HTML)
        assert refused.status_code == 403, part
    page = await client.get(f"/app/tickets/{ours}", headers=HTML)
    assert page.status_code == 200
    assert 'data-action="post_progress"' in page.text
    assert 'data-action="resolve"' not in page.text and 'data-composer="respond"' not in page.text

    # The department field is the key's own, whatever the form sends.
    posted = await client.post(
        f"/app/tickets/{ours}/actions/post_progress",
        data={"csrf": csrf, "department": "finance", "note": "已定位"},
    )
    assert posted.status_code == 200, posted.text
    resolved = await client.post(
        f"/app/tickets/{ours}/actions/resolve",
        data={"csrf": csrf, "result_kind": "technical", "message": "好了", "root_cause": "a-b"},
    )
    assert resolved.status_code == 403
    await stack.settled(ours)
    progress = await stack.pool.fetchval(
        "SELECT data->>'department' FROM ticket_events WHERE ticket_id = $1"
        " AND type = 'progress_posted'",
        ours,
    )
    assert progress == "tech"


async def test_the_language_and_zone_chosen_are_remembered(stack: Stack) -> None:
    client, csrf = await sign_in(stack, "operator")
    chosen = await client.post(
        "/app/preferences",
        data={"csrf": csrf, "locale": "zh-Hant", "time_zone": "Asia/Taipei", "next": "/app/"},
    )
    assert chosen.status_code == 303
    bad = await client.post(
        "/app/preferences", data={"csrf": csrf, "locale": "zh-Hant", "time_zone": "Mars/Base"}
    )
    assert bad.status_code == 422
    await client.post("/app/signout", data={"csrf": csrf})
    again, _ = await sign_in(stack, "operator")
    page = await again.get("/app/", headers=HTML)
    assert '<html lang="zh-Hant">' in page.text
    assert 'value="Asia/Taipei"' in page.text


async def _events(stream: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    name = ""
    async for line in stream.aiter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield name, line.removeprefix("data: ")


async def test_changes_and_viewers_arrive_on_the_live_stream(stack: Stack, served: str) -> None:
    ticket = (await stack.open(subject="登录不了"))["ticket_id"]
    await stack.settled(ticket)
    agent, csrf = await sign_in(stack, "agent", served)
    operator, _ = await sign_in(stack, "operator", served)

    async with (
        agent.stream("GET", f"/app/live?ticket={ticket}") as mine,
        operator.stream("GET", f"/app/live?ticket={ticket}") as theirs,
    ):
        assert mine.headers["content-type"].startswith("text/event-stream")
        heard = _events(theirs)
        # The operator hears that the agent has the ticket open too.
        async with asyncio.timeout(10):
            async for name, data in heard:
                if name == "presence" and "test-agent" in {v["staff_id"] for v in json.loads(data)}:
                    break
        # A note by the agent reaches the operator's stream, naming the ticket.
        note = await agent.post(
            f"/app/tickets/{ticket}/actions/add_note",
            data={"csrf": csrf, "text": "我来跟"},
        )
        assert note.status_code == 200, note.text
        async with asyncio.timeout(10):
            async for name, data in heard:
                if name == "tickets" and ticket in json.loads(data):
                    break
        typing = await agent.post(f"/app/tickets/{ticket}/typing", headers={"X-CSRF-Token": csrf})
        assert typing.status_code == 204
        async with asyncio.timeout(10):
            async for name, data in heard:
                viewers = json.loads(data) if name == "presence" else []
                if any(v["staff_id"] == "test-agent" and v["typing_until"] for v in viewers):
                    break
    await agent.aclose()
    await operator.aclose()
