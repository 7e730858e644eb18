"""Reads: one ticket live from the workflow, its events from the event store, lists from
the read model with filters and cursor pages."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import Stack, unknown_ticket
from tests.waiting import eventually


async def test_show_answers_from_the_workflow(stack: Stack) -> None:
    tid = (await stack.open(channel="app_chat", tier="vip"))["ticket_id"]
    response = await stack.http.get(f"/v1/tickets/{tid}", headers=stack.auth("backend"))
    assert response.status_code == 200
    view = response.json()
    assert view["ticket_id"] == tid
    assert view["status"] == "new"
    assert view["waiting_for"] == "an agent's first response"
    assert view["deadlines"]["first_response"] is not None
    # Answered, it waits for its agent, or says nobody is assigned.
    answered = await stack.act(tid, "responses", {"message": "您好"})
    assert answered.json()["waiting_for"] == "an agent's next step (nobody is assigned)"
    assigned = await stack.act(tid, "assignment", {"agent_id": "agent-3"})
    assert assigned.json()["waiting_for"] == "the next step of agent-3, its agent"


async def test_events_come_from_the_event_store_in_pages(stack: Stack) -> None:
    tid = (await stack.open())["ticket_id"]
    await stack.act(tid, "responses", {"message": "您好"})
    await stack.act(tid, "assignment", {"agent_id": "agent-3"})
    await stack.settled(tid)
    agent = stack.auth("agent")
    everything = await stack.http.get(f"/v1/tickets/{tid}/events", headers=agent)
    assert everything.status_code == 200
    events = everything.json()["events"]
    assert events[0]["type"] == "ticket_opened"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert everything.json()["next_after_seq"] is None

    seen: list[int] = []
    after = 0
    while True:
        page = (
            await stack.http.get(
                f"/v1/tickets/{tid}/events", params={"after_seq": after, "limit": 2}, headers=agent
            )
        ).json()
        seen += [e["seq"] for e in page["events"]]
        if page["next_after_seq"] is None:
            break
        after = page["next_after_seq"]
    assert seen == [e["seq"] for e in events]

    missing = await stack.http.get(f"/v1/tickets/{unknown_ticket()}/events", headers=agent)
    assert missing.status_code == 404


async def _listed(stack: Stack, **params: Any) -> dict[str, Any]:
    response = await stack.http.get("/v1/tickets", params=params, headers=stack.auth("operator"))
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def _opened_between(since: str) -> dict[str, str]:
    """Only the tickets this test opened: the time-skipping tests before it leave tickets
    opened in the future, so a window closed at both ends, not just `opened_after`."""
    until = datetime.now(UTC) + timedelta(seconds=2)
    return {"opened_after": since, "opened_before": until.isoformat()}


async def test_list_filters_and_pages_the_read_model(stack: Stack) -> None:
    since = datetime.now(UTC).isoformat()
    vip = (await stack.open(tier="vip", subject="无法提现", description="提现失败"))["ticket_id"]
    standard = (await stack.open())["ticket_id"]
    dispatched = (await stack.open(subject="App 闪退", description="打开就闪退"))["ticket_id"]
    window = _opened_between(since)
    await stack.act(dispatched, "dispatches", {"departments": ["tech"], "note": "crash"})
    ours = {vip, standard, dispatched}

    # The read model trails the tickets by one activity.
    page = await eventually(
        lambda: _listed(stack, **window, limit=200),
        lambda p: (
            {i["ticket_id"] for i in p["items"]} >= ours
            and any(i["departments"] == ["tech"] for i in p["items"])
        ),
    )
    # The learned classification may still move a ticket's priority and due time: walk
    # the pages once every ticket has come to rest, or the order changes under the walk.
    for ticket_id in ours:
        assert await eventually(lambda t=ticket_id: _classified(stack, t), bool)  # type: ignore[misc]
        await stack.settled(ticket_id)
    page = await _listed(stack, **window, limit=200)
    items = {i["ticket_id"]: i for i in page["items"]}
    assert ours <= set(items)
    # What needs attention first: the SLA due soonest (none last), then the priority.
    assert [_attention(i) for i in page["items"]] == sorted(_attention(i) for i in page["items"])
    assert items[vip]["subject"] == "无法提现"
    newest = await _listed(stack, **window, sort="newest", limit=200)
    opened = [i["opened_at"] for i in newest["items"]]
    assert opened == sorted(opened, reverse=True)

    vip_only = await _listed(stack, **window, tier="vip")
    assert [i["ticket_id"] for i in vip_only["items"]] == [vip]
    tech = await _listed(stack, **window, department="tech")
    assert [i["ticket_id"] for i in tech["items"]] == [dispatched]
    waiting = await _listed(stack, **window, status=["waiting_on_department", "in_progress"])
    assert [i["ticket_id"] for i in waiting["items"]] == [dispatched]
    assert (await _listed(stack, **window, breached="true"))["items"] == []
    assert (await _listed(stack, opened_before=since, opened_after=since))["items"] == []
    by_category = await _listed(stack, **window, category="business_inquiry")
    assert [i["ticket_id"] for i in by_category["items"]] == [standard]
    by_priority = await _listed(stack, **window, priority=["E", "A"])
    assert {i["ticket_id"] for i in by_priority["items"]} <= ours

    # One at a time, by cursor: each ticket once, in the same order, in either order.
    for sort in ("attention", "newest"):
        walked: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {**window, "limit": 1, "sort": sort}
            if cursor:
                params["cursor"] = cursor
            page = await _listed(stack, **params)
            walked += [i["ticket_id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        whole = await _listed(stack, **window, sort=sort)
        assert walked == [i["ticket_id"] for i in whole["items"]]
        assert len(walked) == len(set(walked)) >= 3


async def _classified(stack: Stack, ticket_id: str) -> bool:
    """The learned classifier has answered the ticket's intake (a local activity: its
    marker is in the history once the workflow task that ran it completed)."""
    history = await stack.env.client.get_workflow_handle(ticket_id).fetch_history()
    return any(
        e.marker_recorded_event_attributes.marker_name == "core_local_activity"
        for e in history.events
    )


_RANK = {"E": 0, "A": 1, "B": 2, "C": 3}


def _attention(item: dict[str, Any]) -> tuple[datetime, int, datetime, str]:
    due = (
        datetime.fromisoformat(item["due_at"])
        if item["due_at"]
        else datetime.max.replace(tzinfo=UTC)
    )
    return (
        due,
        _RANK[item["priority"]],
        datetime.fromisoformat(item["opened_at"]),
        item["ticket_id"],
    )


async def test_list_filters_by_assignee_and_unassigned(stack: Stack) -> None:
    since = datetime.now(UTC).isoformat()
    taken = (await stack.open())["ticket_id"]
    free = (await stack.open())["ticket_id"]
    window = _opened_between(since)
    assigned = await stack.act(taken, "assignment", {"agent_id": "agent-42"})
    assert assigned.status_code == 200, assigned.text
    page = await eventually(
        lambda: _listed(stack, **window, assignee="agent-42"),
        lambda p: bool(p["items"]),
    )
    assert [i["ticket_id"] for i in page["items"]] == [taken]
    unassigned = await eventually(
        lambda: _listed(stack, **window, unassigned="true"),
        lambda p: bool(p["items"]),
    )
    assert [i["ticket_id"] for i in unassigned["items"]] == [free]
    anyone = await _listed(stack, **window, unassigned="false")
    assert [i["ticket_id"] for i in anyone["items"]] == [taken]


async def test_unknown_query_parameter_is_refused_not_ignored(stack: Stack) -> None:
    response = await stack.http.get(
        "/v1/tickets", params={"stauts": "new"}, headers=stack.auth("agent")
    )
    assert response.status_code == 422, response.text
    assert "stauts" in response.json()["detail"]
    assert "status" in response.json()["detail"]


async def test_list_refuses_what_it_cannot_read(stack: Stack) -> None:
    agent = stack.auth("agent")
    for params in (
        {"cursor": "not-a-cursor"},
        {"status": "lost"},
        {"limit": 0},
        {"limit": 201},
        {"opened_after": "yesterday"},
        {"breached": "maybe"},
        {"sort": "oldest"},
        {"sort": "newest", "cursor": _attention_cursor()},
    ):
        response = await stack.http.get("/v1/tickets", params=params, headers=agent)
        assert response.status_code == 422, params


def _attention_cursor() -> str:
    """A well-formed cursor of the attention order, sent with another order."""
    raw = json.dumps(["attention", "2026-01-01T00:00:00+00:00", "ticket-x", None, 2])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


async def test_managers_read_the_indicators_and_agents_do_not(stack: Stack) -> None:
    start = datetime.now(UTC)
    tid = (await stack.open(channel="app_chat"))["ticket_id"]
    replied = await stack.act(tid, "responses", {"message": "您好"})
    assert replied.status_code == 200, replied.text
    await stack.settled(tid)
    period = {"from": start.isoformat(), "to": (start + timedelta(days=1)).isoformat()}
    answer = await stack.http.get("/v1/metrics", params=period, headers=stack.auth("manager"))
    assert answer.status_code == 200, answer.text
    [everyone] = answer.json()["groups"]
    assert everyone["opened"] >= 1
    assert everyone["first_response"]["live"]["n"] >= 1
    grouped = await stack.http.get(
        "/v1/metrics", params={**period, "group_by": "channel"}, headers=stack.auth("operator")
    )
    assert "app_chat" in {g["key"] for g in grouped.json()["groups"]}
    refused = await stack.http.get("/v1/metrics", params=period, headers=stack.auth("agent"))
    assert refused.status_code == 403
    backwards = {"from": period["to"], "to": period["from"]}
    bad = await stack.http.get("/v1/metrics", params=backwards, headers=stack.auth("manager"))
    assert bad.status_code == 422


async def test_prometheus_scrapes_the_indicators_with_a_managers_key(stack: Stack) -> None:
    tid = (await stack.open(channel="app_chat"))["ticket_id"]
    replied = await stack.act(tid, "responses", {"message": "您好"})
    assert replied.status_code == 200, replied.text
    await stack.settled(tid)
    scraped = await stack.http.get("/metrics", headers=stack.auth("manager"))
    assert scraped.status_code == 200, scraped.text
    assert scraped.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
    [opened] = families["ticketflow_tickets_opened"].samples
    assert opened.value >= 1
    live = [
        s
        for s in families["ticketflow_first_response_seconds"].samples
        if s.labels == {"channel_kind": "live", "quantile": "0.5"}
    ]
    assert live and live[0].value >= 0
    assert (await stack.http.get("/metrics", headers=stack.auth("agent"))).status_code == 403
    assert (await stack.http.get("/metrics")).status_code == 401
