"""The deliveries page in headless Chromium, served by uvicorn as `make dev` serves it."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser

from tests.api.conftest import Stack
from tests.conftest import watch


async def test_the_page_shows_what_each_recipient_gets(
    stack: Stack, served: str, browser: Browser, tmp_path: Path
) -> None:
    tid = (
        await stack.open(
            channel="email",
            locale="zh-TW",
            subject="提現失敗",
            description="提現一直失敗, 錢沒到賬",
        )
    )["ticket_id"]
    dispatched = await stack.act(tid, "dispatches", {"departments": ["tech"], "note": "查提現通道"})
    assert dispatched.status_code == 200, dispatched.text
    await stack.settled(tid)

    page = await browser.new_page(locale="zh-TW")
    seen = watch(page, served)
    await page.goto(f"{served}/tickets/{tid}/deliveries")
    await page.fill("#key", stack.keys["agent"])
    await page.click("button")
    await page.wait_for_selector("body[data-loaded]")

    customer = await page.inner_text("#customer")
    others = await page.inner_text("#others")
    # Not delivered here (no relay runs): shown as it will be said, in Traditional Chinese.
    assert "您好，我們已收到您的問題" in customer
    assert "on its way" in customer
    assert "queue://tech-oncall" in others
    # The work order as the department will read it: the company's language (zh-Hans),
    # the agent's note as written.
    assert f"新工单 {tid}（" in others and "：查提現通道" in others
    # The page itself speaks both languages, like the dashboard and the review page.
    assert await page.get_attribute("html", "lang") == "zh-Hans"
    assert "投递记录 · Deliveries of" in await page.inner_text("h1")
    headings = await page.locator("h2").all_inner_texts()
    assert headings == [
        "客户收到的消息 The customer received",
        "部门、合作方与主管收到的消息 Departments, partners and supervisors received",
    ]
    assert "受理确认 acknowledgement" in customer and "发送中 on its way" in customer
    assert "工单 work order" in others
    assert await page.inner_text("button") == "显示 Show"
    assert seen.problems == []
    assert seen.outside == []  # no CDN, nothing from elsewhere

    # The key is remembered: a reload shows the deliveries at once.
    await page.reload()
    await page.wait_for_selector("body[data-loaded]")
    shot = tmp_path / "deliveries.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000  # rendered, not blank
    await page.close()


async def test_a_wrong_key_says_so_on_the_page(served: str, browser: Browser) -> None:
    page = await browser.new_page()
    await page.goto(f"{served}/tickets/ticket-{'0' * 24}/deliveries")
    await page.fill("#key", "tfk_wrong")
    await page.click("button")
    await page.wait_for_function("document.getElementById('problem').textContent.length > 0")
    assert (await page.inner_text("#problem")).startswith("401")
    await page.close()
