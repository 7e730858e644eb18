"""The service-health dashboard in headless Chromium, served by uvicorn as `make dev` does."""

from __future__ import annotations

import os
import random
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import Browser

from tests.api.conftest import Stack
from tests.conftest import watch
from tests.waiting import eventually
from workflows.surge import Findings, Investigation, SurgeInvestigationWorkflow
from workflows.surge_contracts import Openings

DOCS = Path(__file__).parents[2] / "docs"


async def test_the_dashboard_charts_the_periods_numbers(
    stack: Stack, served: str, browser: Browser, tmp_path: Path
) -> None:
    # A period with words in it: replies, a dispatch answered by tech, a resolution.
    for channel in ("app_chat", "email", "web_form"):
        tid = (await stack.open(channel=channel, subject="提现失败", description="钱没到账"))[
            "ticket_id"
        ]
        assert (await stack.act(tid, "responses", {"message": "您好"})).status_code == 200
        dispatched = await stack.act(tid, "dispatches", {"departments": ["tech"], "note": "查"})
        assert dispatched.status_code == 200
        posted = await stack.act(
            tid, "progress", {"department": "tech", "note": "好了", "work_order_done": True}
        )
        assert posted.status_code == 200
        await stack.settled(tid)

    # A surge of verification codes under investigation, on the API's task queue: its rise
    # explains the technical faults' (one investigation names both).
    counts = {"last_24h": 40, "day_before": 20, "week_before": 18}
    surge = Openings(dimension="topic", value="verification_code", **counts)
    category = Openings(dimension="category", value="technical_fault", **counts)
    investigation = await stack.env.client.start_workflow(
        SurgeInvestigationWorkflow.run,
        Investigation(surge=surge, policy=stack.settings.policy, explains=[category]),
        id=f"surge-topic-verification_code-{uuid.uuid4().hex[:8]}",
        task_queue=stack.settings.task_queue,
    )
    listed = await eventually(
        lambda: stack.http.get("/v1/surges", headers=stack.auth("manager")),
        lambda r: any(s["open"] and s["category"] for s in r.json()),
    )
    assert [(s["value"], s["topic"], s["category"]) for s in listed.json() if s["open"]] == [
        ("verification_code", "verification_code", "technical_fault")
    ]
    assert (await stack.http.get("/v1/surges", headers=stack.auth("agent"))).status_code == 403

    # A review recorded (of a week long past no other test writes in).
    week = f"{random.randint(2001, 2019)}-W{random.randint(10, 50):02d}"
    started = await stack.http.post(
        "/v1/reviews", json={"week": week}, headers=stack.auth("manager")
    )
    assert started.status_code in (200, 201), started.text
    await eventually(
        lambda: stack.http.get("/v1/reviews", headers=stack.auth("manager")),
        lambda r: any(listed["week"] == week for listed in r.json()),
    )

    page = await browser.new_page(locale="zh-CN", viewport={"width": 1400, "height": 1000})
    seen = watch(page, served)
    await page.goto(f"{served}/dashboard")
    await page.fill("#key", stack.keys["manager"])
    await page.click("button")
    await page.wait_for_selector("body[data-loaded]")
    await page.wait_for_selector("#trend circle")

    # The numbers of the same period, straight from the API.
    end = datetime.now(UTC)
    period = {"from": (end - timedelta(days=30)).isoformat(), "to": end.isoformat()}
    health = (
        await stack.http.get("/v1/metrics", params=period, headers=stack.auth("manager"))
    ).json()
    opened = health["groups"][0]["opened"]
    assert opened >= 3
    assert await page.inner_text("#kpi-opened b") == str(opened)
    categories = await page.eval_on_selector_all(
        "#categories rect", "rects => rects.map(r => Number(r.dataset.value))"
    )
    assert sum(categories) == opened
    categories_text = await page.inner_text("#categories")
    assert "⚠ 故障" in categories_text  # Chinese labels render as text; the surge is marked
    assert "surge" in categories_text
    tech = await page.inner_text("#departments")
    assert "tech" in tech
    trend = await page.eval_on_selector_all(
        "#trend circle", "points => points.map(p => Number(p.dataset.value))"
    )
    assert len(trend) == 14 and trend[-1] >= 3
    # The review link opens the newest review recorded (one of the week so far included),
    # not a week nobody reviewed.
    reviews = (await stack.http.get("/v1/reviews", headers=stack.auth("manager"))).json()
    assert await page.get_attribute("#review-link", "href") == f"/reviews/{reviews[0]['week']}"
    assert seen.problems == []
    assert seen.outside == []  # no CDN, nothing from elsewhere

    shot = tmp_path / "dashboard.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    if os.environ.get("TICKETFLOW_DOCS_SCREENSHOTS"):
        shutil.copy(shot, DOCS / "dashboard.png")
    await page.close()
    await investigation.execute_update(
        SurgeInvestigationWorkflow.close, Findings(findings="test surge, closed")
    )
