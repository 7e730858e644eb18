"""The agents' workspace over HTTP (the browser's view is in test_workspace_browser.py):
signing in, CSRF, the queue's views and counts, the ticket page, the forms of the table
of actions, and a department's scope."""

from __future__ import annotations

import re

import httpx

from tests.api.conftest import Stack, eventually

CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


async def sign_in(stack: Stack, role: str) -> tuple[httpx.AsyncClient, str]:
    """A browser-like client signed in with the role's key, and its CSRF token."""
    client = httpx.AsyncClient(transport=stack.http._transport, base_url=str(stack.http.base_url))
    form = await client.get("/app/signin")
    assert form.status_code == 200
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    signed = await client.post(
        "/app/signin", data={"csrf": token.group(1), "key": stack.keys[role]}
    )
    assert signed.status_code == 303, signed.text
    page = await client.get("/app/", headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found is not None
    return client, found.group(1)


async def test_an_agent_signs_in_works_a_ticket_and_signs_out(stack: Stack) -> None:
    client, csrf = await sign_in(stack, "agent")
    cookie = client.cookies.jar
    session = next(c for c in cookie if c.name == "tf_session")
    assert session.has_nonstandard_attr("HttpOnly")
    assert stack.keys["agent"] not in str(session.value)

    ticket = (
        await stack.open(tier="vip", subject="支付失败 扣款了", description="付款失败但扣款了")
    )["ticket_id"]
    await stack.settled(ticket)
    queue = await client.get("/app/?view=all", headers={"Accept": "text/html"})
    assert ticket in queue.text

    page = await client.get(f"/app/tickets/{ticket}", headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text
    assert "付款失败但扣款了" in page.text

    note = await client.post(
        f"/app/tickets/{ticket}/actions/add_note",
        data={"csrf": csrf, "action_id": "ws-note-1", "text": "先查扣款记录"},
    )
    assert note.status_code == 200, note.text
    forged = await client.post(
        f"/app/tickets/{ticket}/actions/add_note",
        data={"csrf": "forged", "action_id": "ws-note-2", "text": "x"},
    )
    assert forged.status_code == 403
    await stack.settled(ticket)
    assert "note_added" in await stack.stored_events(ticket)

    out = await client.post("/app/signout", data={"csrf": csrf})
    assert out.status_code == 303
    after = await client.get("/app/", headers={"Accept": "text/html"})
    assert after.status_code == 303
    await eventually(lambda: client.get("/app/"), lambda r: r.status_code in (303, 401))
