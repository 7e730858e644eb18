"""One ticket from intake to closed, only through HTTP, each step by the role that owns it."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.conftest import Stack, intake
from tests.waiting import eventually


async def test_intake_to_closed_through_http_only(stack: Stack) -> None:
    http = stack.http
    backend, agent = stack.auth("backend"), stack.auth("agent")
    tech = stack.auth("department:tech")

    # The app's feedback form, through its backend.
    opened = await http.post(
        "/v1/tickets",
        json=intake(
            channel="app_feedback",
            subject="支付成功但订单未生成",
            description="付款后订单页一直显示待支付",
        ),
        headers={**backend, "Idempotency-Key": f"app-{uuid.uuid4()}"},
    )
    assert opened.status_code == 201
    tid = opened.json()["ticket_id"]

    async def act(route: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        response = await http.post(f"/v1/tickets/{tid}/{route}", json=body, headers=headers)
        assert response.status_code == 200, (route, response.text)
        view: dict[str, Any] = response.json()
        return view

    await act("assignment", {"agent_id": "agent-7"}, agent)
    await act("responses", {"message": "已收到, 技术同事正在排查"}, agent)
    await act("dispatches", {"departments": ["tech"], "note": "支付回调丢失"}, agent)
    progress = await act(
        "progress", {"department": "tech", "note": "回调已补发", "work_order_done": True}, tech
    )
    assert progress["open_work_orders"] == []
    resolved = await act(
        "resolution",
        {
            "result_kind": "technical",
            "message": "订单已生成, 请刷新查看",
            "root_cause": "產品缺陷-支付流程",
        },
        agent,
    )
    assert resolved["status"] == "resolved_awaiting_confirmation"

    # The customer confirms on their channel, and rates the service.
    for reply in (
        {"reply_id": "sms-1", "kind": "csat", "score": 5},
        {"reply_id": "sms-2", "kind": "solved"},
    ):
        answered = await http.post(
            f"/v1/tickets/{tid}/customer-replies", json=reply, headers=backend
        )
        assert answered.status_code == 202

    async def shown() -> dict[str, Any]:
        response = await http.get(f"/v1/tickets/{tid}", headers=agent)
        view: dict[str, Any] = response.json()
        return view

    final = await eventually(shown, lambda view: view["status"] == "closed")
    assert final["status"] == "closed"
    assert final["root_cause"] == "產品缺陷-支付流程"

    async def events() -> list[str]:
        response = await http.get(f"/v1/tickets/{tid}/events", headers=agent)
        return [e["type"] for e in response.json()["events"]]

    types = await eventually(events, lambda found: "closed" in found)
    assert types[0] == "ticket_opened"
    assert {"first_responded", "dispatched", "work_order_done", "resolved", "csat_recorded"} <= set(
        types
    )
    assert "reopened" not in types

    async def listed() -> list[str]:
        response = await http.get("/v1/tickets", params={"status": "closed"}, headers=agent)
        return [item["ticket_id"] for item in response.json()["items"]]

    assert tid in await eventually(listed, lambda ids: tid in ids)

    # Closed means closed, but the ticket still listens for its ratings (the feedback
    # window): a rating sent now is recorded, a message is kept without reopening.
    for late in (
        {"reply_id": "sms-3", "kind": "nps", "score": 8},
        {"reply_id": "sms-4", "kind": "message", "text": "谢谢"},
    ):
        answered = await http.post(
            f"/v1/tickets/{tid}/customer-replies", json=late, headers=backend
        )
        assert answered.status_code == 202

    after_close = await eventually(events, lambda found: found[-1] == "customer_replied")
    assert after_close[after_close.index("closed") :][-2:] == ["nps_recorded", "customer_replied"]
    assert (await shown())["status"] == "closed"
