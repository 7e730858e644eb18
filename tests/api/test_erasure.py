"""A customer's right to erasure, through the API on the dev server and real PostgreSQL:
no plaintext of the customer stays in any table or any later read, the counts do."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from tests.api.conftest import Stack, intake

CLOSE = {"long_term_plan": "下个版本支持", "root_cause": "需求缺口-會員續費"}
TABLES = ("ticket_events", "outbox", "tickets", "intake_keys")


async def everything(stack: Stack) -> str:
    """Every row of every table that holds tickets, as text, one line per row."""
    parts = []
    for table in TABLES:
        rows = await stack.pool.fetch(f"SELECT t::text AS row FROM {table} t")
        parts += [f"{table}: {row['row']}" for row in rows]
    return "\n".join(parts)


def lines_with(text: str, secret: str) -> list[str]:
    return [line[:400] for line in text.splitlines() if secret in line]


async def kept(stack: Stack, ticket_id: str) -> tuple[list[Any], list[Any]]:
    """What the indicators read: the events' facts and the read model's numbers."""
    events = await stack.pool.fetch(
        "SELECT seq, type, occurred_at, actor_role, data -> 'seconds', "
        "data -> 'score', data -> 'priority', data -> 'category' "
        "FROM ticket_events WHERE ticket_id = $1 ORDER BY seq",
        ticket_id,
    )
    row = await stack.pool.fetch(
        "SELECT status, priority, category, topic, channel, tier, tag, departments, sla_due_at, "
        "sla_breached, reopen_count, first_response_seconds, opened_at, first_response_at, "
        "resolved_at, closed_at, close_reason, csat, nps, last_seq FROM tickets WHERE ticket_id = $1",
        ticket_id,
    )
    return [tuple(e) for e in events], [tuple(r) for r in row]


def intake_body(customer_id: str, marker: str) -> dict[str, Any]:
    return intake(
        customer_id=customer_id,
        subject=f"{marker} 会员续费失败",
        description=f"{marker} 请回电 13912345678, mail {marker}@example.com",
    )


async def closed_ticket(stack: Stack, customer_id: str, marker: str, key: str | None = None) -> str:
    # A backslash in the key: PostgreSQL must hash it as text, not parse it as bytea.
    key = key or f"erase\\{uuid.uuid4()}"
    answer = await stack.http.post(
        "/v1/tickets",
        json=intake_body(customer_id, marker),
        headers={**stack.auth("backend"), "Idempotency-Key": key},
    )
    assert answer.status_code == 201, answer.text
    ticket_id: str = answer.json()["ticket_id"]
    replied = await stack.act(ticket_id, "responses", {"message": f"您好 {marker}, 正在查看"})
    assert replied.status_code == 200, replied.text
    # Words typed into any field of an action, a checkpoint of a partner engagement too.
    engagement = {
        "partner": "sf-express",
        "problem": "包裹丢失",
        "expected_by": "2030-01-01T00:00:00Z",
        "checkpoints": [f"{marker} 回电 13912345678"],
    }
    engaged = await stack.act(ticket_id, "partner-engagements", engagement)
    assert engaged.status_code == 200, engaged.text
    closed = await stack.act(ticket_id, "closure", CLOSE)
    assert closed.status_code == 200, closed.text
    await stack.settled(ticket_id)
    return ticket_id


async def test_erasure_leaves_no_plaintext_and_keeps_the_counts(stack: Stack) -> None:
    customer = f"cust-{uuid.uuid4().hex[:10]}"
    marker = f"Zhang{uuid.uuid4().hex[:8]}"
    keys = [f"mail\\{uuid.uuid4()}" for _ in range(2)]
    tickets = [await closed_ticket(stack, customer, marker, key) for key in keys]
    bystander_marker = f"Li{uuid.uuid4().hex[:8]}"
    bystander = await closed_ticket(stack, f"cust-{uuid.uuid4().hex[:10]}", bystander_marker)
    before = {t: await kept(stack, t) for t in tickets}
    text = await everything(stack)
    assert marker in text and customer in text and "13912345678" in text

    refused = await stack.http.post(
        "/v1/erasures", json={"customer_id": customer}, headers=stack.auth("agent")
    )
    assert refused.status_code == 403
    answer = await stack.http.post(
        "/v1/erasures", json={"customer_id": customer}, headers=stack.auth("operator")
    )
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert sorted(report["tickets"]) == sorted(tickets)
    assert report["counts"]["events"] > 0 and report["counts"]["intake_keys"] == 2
    assert report["workflows_deleted"] == 2 and report["workflows_terminated"] == 2

    text = await everything(stack)
    assert lines_with(text, marker) == []
    assert lines_with(text, customer) == []
    assert bystander_marker in text  # nobody else's words go
    # Later reads: the ticket answers "erased" at once (Temporal deletes its history in
    # the background), the list has no subject; the counts are as they were.
    for ticket_id in tickets:
        assert await kept(stack, ticket_id) == before[ticket_id]
        shown = await stack.http.get(f"/v1/tickets/{ticket_id}", headers=stack.auth("operator"))
        assert (shown.status_code, shown.json()["code"]) == (410, "ticket_erased")
        for path in ("thread", "events", "deliveries"):  # from PostgreSQL: redacted
            read = await stack.http.get(
                f"/v1/tickets/{ticket_id}/{path}", headers=stack.auth("operator")
            )
            assert read.status_code == 200
            assert marker not in read.text and "13912345678" not in read.text
            assert path == "deliveries" or "[erased]" in read.text
    listed = await stack.http.get(
        "/v1/tickets", params={"status": "closed", "limit": 200}, headers=stack.auth("operator")
    )
    assert listed.status_code == 200
    assert set(tickets) <= {t["ticket_id"] for t in listed.json()["items"]}
    assert marker not in listed.text
    pseudonyms = await stack.pool.fetch(
        "SELECT DISTINCT customer_id FROM tickets WHERE ticket_id = ANY($1::text[])", tickets
    )
    assert [row["customer_id"] for row in pseudonyms] == [report["pseudonym"]]
    assert (
        await stack.http.get(f"/v1/tickets/{bystander}", headers=stack.auth("operator"))
    ).status_code == 200

    again = await stack.http.post(
        "/v1/erasures", json={"customer_id": customer}, headers=stack.auth("operator")
    )
    assert again.status_code == 200  # a retry is harmless: nothing is left to erase
    assert (again.json()["tickets"], again.json()["pseudonym"]) == ([], None)
    # The erasures table names the tickets and the pseudonym, never the customer.
    recorded = await stack.pool.fetchrow(
        "SELECT * FROM erasures WHERE pseudonym = $1", report["pseudonym"]
    )
    assert recorded is not None
    assert sorted(recorded["tickets"]) == sorted(tickets)
    assert customer not in str(dict(recorded))
    # The backend sends one of the erased intakes again: refused, nothing comes back.
    resent = await stack.http.post(
        "/v1/tickets",
        json=intake_body(customer, marker),
        headers={**stack.auth("backend"), "Idempotency-Key": keys[0]},
    )
    assert (resent.status_code, resent.json()["code"]) == (410, "ticket_erased")
    assert marker not in resent.text


async def test_open_tickets_are_closed_first(stack: Stack) -> None:
    customer = f"cust-{uuid.uuid4().hex[:10]}"
    opened = await stack.open(customer_id=customer)
    await stack.settled(opened["ticket_id"])
    answer = await stack.http.post(
        "/v1/erasures", json={"customer_id": customer}, headers=stack.auth("operator")
    )
    assert answer.status_code == 409
    assert answer.json()["code"] == "tickets_open"
    assert opened["ticket_id"] in answer.json()["detail"]
    assert customer in await everything(stack)  # nothing was erased
    empty = await stack.http.post(
        "/v1/erasures", json={"customer_id": ""}, headers=stack.auth("operator")
    )
    assert empty.status_code == 422


async def test_the_event_store_stays_append_only_outside_an_erasure(stack: Stack) -> None:
    ticket_id = await closed_ticket(stack, f"cust-{uuid.uuid4().hex[:10]}", "x")
    with pytest.raises(asyncpg.RestrictViolationError):
        await stack.pool.execute(
            "UPDATE ticket_events SET data = '{}' WHERE ticket_id = $1", ticket_id
        )
    async with stack.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL ticketflow.erasure = 'on'")
        with pytest.raises(asyncpg.RestrictViolationError):  # only `data` may change
            await conn.execute(
                "UPDATE ticket_events SET type = 'closed' WHERE ticket_id = $1", ticket_id
            )
    with pytest.raises(asyncpg.RestrictViolationError):
        await stack.pool.execute("DELETE FROM ticket_events WHERE ticket_id = $1", ticket_id)
