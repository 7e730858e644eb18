"""The agents' workspace in headless Chromium, on the real stack: the dev Temporal server,
a real worker with its outbox relay delivering to the dev receiver over signed HTTP, real
PostgreSQL and the API served by uvicorn, as `make dev` runs them.

The module has a schema of its own (the relay delivers every due row it sees) and a
policy whose first SLA warning comes after 1 % of the SLA, ten times faster than real
time: a new E ticket is "breaching soon" within two seconds and stays there for
minutes. Nothing here sleeps: it waits for what the page shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, ViewportSize
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.database import create_pool, migrate, schema_for_run
from activities.delivery import DeliveryConfig, OutboxRelay
from activities.messages import MessageTemplates
from api.access import hash_key, new_key
from api.client import TicketClient
from api.server import serve
from api.settings import ApiConfig, ApiKeyEntry, ApiSettings
from api.workspace import i18n
from tests.conftest import PageWatch, watch
from tests.waiting import eventually
from workers.devstack import free_port
from workers.main import build_worker, start_relay
from workers.receiver import PATH, Inbox, Received, serve_receiver
from workflows.contracts import AddNote
from workflows.policy import ServicePolicy, SlaWarning
from workflows.primitives import Actor
from workflows.vocabulary import Role

# The API stops cleanly: its live hub gives its listening connection back clean.
pytestmark = pytest.mark.filterwarnings("error::asyncpg.InterfaceWarning")
DOCS = Path(__file__).parents[2] / "docs"
SECRET = "workspace-receiver-" + "w" * 16
# E's 30 minutes last 3 real minutes; the first warning comes 1.8 s after intake.
POLICY = ServicePolicy(
    time_scale=10,
    sla_warnings=[SlaWarning(at=0.01, notify="assignee"), SlaWarning(at=0.9, notify="supervisor")],
)
# The pages open in zh-CN browsers: the workspace speaks the company's zh-Hans to them.
STAFF_WORDS = i18n.Words("zh-Hans", POLICY.time_zone)
# The workspace's people: each key names one (the name is who the record says acted).
PEOPLE = {
    "agent-wang": "agent",
    "agent-lin": "agent",
    "supervisor-chen": "operator",
    "tech-desk": "department:tech",
    "finance-desk": "department:finance",
    "backend": "backend",
    "knowledge-editor": "knowledge",
}
VIEWPORT: ViewportSize = {"width": 1400, "height": 900}


@dataclass
class Api:
    """The API served by uvicorn, as `ticketflow api` serves it; it can be restarted."""

    settings: ApiConfig
    client: Client
    database_url: str
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    serving: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api.port}"

    async def start(self) -> None:
        self.stop = asyncio.Event()
        self.serving = asyncio.create_task(
            serve(self.settings, self.client, self.stop, self.database_url)
        )
        async with httpx.AsyncClient(base_url=self.url) as probe:
            assert await eventually(_healthy(probe), lambda ok: ok)

    async def halt(self) -> None:
        assert self.serving is not None
        self.stop.set()
        await asyncio.wait_for(self.serving, 15)
        self.serving = None


@dataclass
class Desk:
    url: str
    http: httpx.AsyncClient  # the API, over HTTP
    keys: dict[str, str]  # person -> key
    inbox: Inbox
    browser: Browser
    api: Api
    tickets: TicketClient  # the tickets themselves, without the API

    def auth(self, person: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[person]}"}

    async def open(self, **fields: Any) -> str:
        body = {
            "channel": "app_chat",
            "customer_id": f"cust-{uuid.uuid4().hex[:8]}",
            "tier": "standard",
            "subject": "会员怎么续费",
            "description": "请问会员到期后怎么续费?",
            "context": {
                "device_model": "iPhone 15",
                "os_version": "iOS 18.1",
                "app_version": "7.3.0",
                "operation_path": ["我的", "钱包", "付款"],
            },
            **fields,
        }
        opened = await self.http.post(
            "/v1/tickets",
            json=body,
            headers={**self.auth("backend"), "Idempotency-Key": f"ws-{uuid.uuid4()}"},
        )
        assert opened.status_code == 201, opened.text
        ticket_id: str = opened.json()["ticket_id"]
        return ticket_id

    async def act(self, ticket_id: str, route: str, body: Any, person: str) -> None:
        done = await self.http.post(
            f"/v1/tickets/{ticket_id}/{route}", json=body, headers=self.auth(person)
        )
        assert done.status_code == 200, done.text

    async def signed_in(self, person: str, locale: str = "zh-CN") -> tuple[Page, PageWatch]:
        """A browser of its own (its own cookies), signed in as `person`, on the queue."""
        context = await self.browser.new_context(viewport=VIEWPORT, locale=locale)
        page = await context.new_page()
        seen = watch(page, self.url)
        await sign_in(page, self.url, self.keys[person])
        return page, seen


async def sign_in(page: Page, url: str, key: str) -> None:
    await page.goto(f"{url}/app/signin")
    await page.fill("#key", key)
    async with page.expect_navigation(url=f"{url}/app/"):
        await page.click("button[type=submit]")
    await page.wait_for_selector("body[data-page=queue]")


def arrived(desk: Desk, ticket_id: str, text: str) -> Callable[[], Awaitable[list[Received]]]:
    async def probe() -> list[Received]:
        return [r for r in desk.inbox.of(ticket_id) if r.text == text]

    return probe


def refused(status: int, reason: str) -> str:
    """What Chromium logs for an answer of `status` (a refusal the test asks for)."""
    return f"Failed to load resource: the server responded with a status of {status} ({reason})"


async def closed(page: Page, seen: PageWatch, *expected: str) -> None:
    """Every page ends clean: no console error but the refusals the test asked for,
    nothing asked of another origin."""
    assert seen.problems == list(expected)
    assert seen.outside == []
    await page.context.close()


async def mark(page: Page) -> None:
    """A mark on the loaded document: still there later means the page never reloaded."""
    await page.evaluate("window.__marker = 'loaded once'")


async def still_marked(page: Page) -> bool:
    return bool(await page.evaluate("window.__marker === 'loaded once'"))


async def open_form(page: Page, action: str) -> None:
    await page.click(f'details[data-form="{action}"] > summary')


async def submit(page: Page, action: str) -> None:
    async with page.expect_response(lambda r: r.url.endswith(f"/actions/{action}")) as answer:
        await page.click(f'form[data-action="{action}"] button[type=submit]')
    assert (await answer.value).ok, await (await answer.value).text()


@pytest.fixture(scope="module")
async def desk(
    dev_env: WorkflowEnvironment, database_url: str, browser: Browser
) -> AsyncIterator[Desk]:
    client = dev_env.client
    stop_receiver = asyncio.Event()
    inbox = Inbox(secret=SECRET)
    receiver_port, api_port = free_port(), free_port()
    receiving = asyncio.create_task(
        serve_receiver(inbox, "127.0.0.1", receiver_port, stop_receiver)
    )
    async with schema_for_run(database_url, "workspace") as schema:
        pool = await create_pool(schema.url)
        await migrate(pool)
        config = DeliveryConfig(
            webhook_url=f"http://127.0.0.1:{receiver_port}{PATH}",
            secret=SecretStr(SECRET),
            poll_interval=timedelta(milliseconds=50),
        )
        relay = OutboxRelay(pool, POLICY, MessageTemplates.load(), config, client)
        task_queue = f"workspace-{uuid.uuid4()}"
        worker = build_worker(client, task_queue, pool, POLICY, relay=relay)
        working = asyncio.create_task(worker.run())
        await start_relay(client, task_queue)
        keys = {person: new_key() for person in PEOPLE}
        entries = [
            ApiKeyEntry(name=person, role=PEOPLE[person], sha256=hash_key(key))
            for person, key in keys.items()
        ]
        settings = ApiConfig(
            task_queue=task_queue,
            policy=POLICY,
            api=ApiSettings(keys=entries, host="127.0.0.1", port=api_port),
        )
        api = Api(settings, client, schema.url)
        await api.start()
        tickets = TicketClient(client, task_queue=task_queue, policy=POLICY)
        try:
            # Idle connections are dropped well before uvicorn's keep-alive (5 s) closes
            # them: a request on one it is closing fails with a ReadError.
            idle = httpx.Limits(keepalive_expiry=1.0)
            async with httpx.AsyncClient(base_url=api.url, limits=idle) as http:
                yield Desk(api.url, http, keys, inbox, browser, api, tickets)
        finally:
            if api.serving is not None:
                await api.halt()
            async for execution in client.list_workflows(
                f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"
            ):
                with contextlib.suppress(RPCError):
                    await client.get_workflow_handle(execution.id).terminate("tests done")
            await worker.shutdown()
            await working
            await relay.close()
            stop_receiver.set()
            await receiving
            await pool.close()


def _healthy(http: httpx.AsyncClient) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        try:
            return (await http.get("/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    return probe


@pytest.fixture(scope="module")
async def payment_script(desk: Desk) -> str:
    """A reply script for payment faults, written in all three languages."""
    entry_id = f"script-pay-{uuid.uuid4().hex[:6]}"
    body = {
        "entry_id": entry_id,
        "kind": "script",
        "category": "technical_fault",
        "topic": "payment",
        "tags": ["支付", "payment"],
        "variants": {
            "zh-Hans": {
                "question": "支付失败 全部用户都付不了款",
                "answer": "您好，支付故障（工单 {{ ticket_id }}）技术团队正在紧急处理，恢复后第一时间通知您。",
            },
            "zh-Hant": {
                "question": "支付失敗 全部用戶都付不了款",
                "answer": "您好，支付故障（工單 {{ ticket_id }}）技術團隊正在緊急處理，恢復後第一時間通知您。",
            },
            "en": {
                "question": "Payment fails for every user",
                "answer": "Hello, the payment fault (ticket {{ ticket_id }}) is being fixed urgently; we will tell you as soon as it works again.",
            },
        },
    }
    created = await desk.http.post(
        "/v1/knowledge", json=body, headers=desk.auth("knowledge-editor")
    )
    assert created.status_code == 201, created.text
    return entry_id


# ---------------------------------------------------------------- the agent's whole case


async def test_an_agent_works_a_vip_payment_outage_without_a_reload(
    desk: Desk, payment_script: str
) -> None:
    script = payment_script
    tid = await desk.open(
        tier="vip",
        locale="zh-TW",
        subject="支付失敗",
        description="全部用戶都付不了款，一直顯示支付失敗",
    )
    queue, seen_queue = await desk.signed_in("agent-wang", locale="zh-TW")
    await queue.click('a[data-view="breaching"]')
    await queue.wait_for_selector('a[data-view="breaching"][aria-current=page]')
    await mark(queue)
    # Warned within seconds: the row arrives live, at the top of "breaching soon".
    await queue.wait_for_function(
        "id => document.querySelector('#queue tbody tr[data-ticket]')?.dataset.ticket === id",
        arg=tid,
    )
    assert "支付失敗" in await queue.inner_text(f'tr[data-ticket="{tid}"]')
    # Its countdown runs in the page: the text changes without a request.
    due = f'tr[data-ticket="{tid}"] [data-due]'
    before = await queue.inner_text(due)
    await queue.wait_for_function(
        "([sel, was]) => document.querySelector(sel).textContent !== was", arg=[due, before]
    )

    # Opened beside the queue (same browser, same session): the queue stays in view.
    href = await queue.get_attribute(f'tr[data-ticket="{tid}"] a', "href")
    assert href == f"/app/tickets/{tid}"
    ticket = await queue.context.new_page()
    seen_ticket = watch(ticket, desk.url)
    await ticket.goto(desk.url + href)
    await ticket.wait_for_selector("body[data-page=ticket]")
    await mark(ticket)

    # The suggested script fills the reply box in the customer's Traditional Chinese.
    await ticket.click(f'[data-script="{script}"]')
    words = f"您好，支付故障（工單 {tid}）技術團隊正在緊急處理，恢復後第一時間通知您。"
    await ticket.wait_for_function(
        "words => document.querySelector('#reply').value === words", arg=words
    )
    await submit(ticket, "respond")
    [received] = await eventually(arrived(desk, tid, words), bool)
    assert received.locale == "zh-Hant"
    assert received.destination == "app_chat"
    line = ticket.locator("ol.conversation li.customer-facing", has_text=words)
    await line.locator(".delivery.ok").wait_for()

    await open_form(ticket, "dispatch")
    await ticket.select_option("#dispatch-departments", ["tech"])
    await ticket.fill("#dispatch-note", "全部用戶支付失敗，請查支付通道")
    await submit(ticket, "dispatch")
    await ticket.wait_for_selector('dd[data-status="waiting_on_department"]')

    # Tech fixes it and closes its work order from its own page; the agent's page hears.
    tech, seen_tech = await desk.signed_in("tech-desk")
    await tech.goto(f"{desk.url}/app/tickets/{tid}")
    await open_form(tech, "post_progress")
    await tech.fill("#post_progress-note", "支付通道证书已更换，已恢复")
    await tech.check("#post_progress-work_order_done")
    await submit(tech, "post_progress")
    await closed(tech, seen_tech)
    await ticket.wait_for_selector('dd[data-status]:not([data-status="waiting_on_department"])')

    await open_form(ticket, "resolve")
    await ticket.select_option("#resolve-result_kind", "technical")
    await ticket.fill("#resolve-message", "支付通道已恢復，您可以重新付款。")
    await ticket.fill("#resolve-root_cause", "產品缺陷-支付流程")
    await submit(ticket, "resolve")
    await ticket.wait_for_selector('dd[data-status="resolved_awaiting_confirmation"]')

    # Off the list of what breaches soon, on the queue page that stayed open.
    await queue.wait_for_selector(f'tr[data-ticket="{tid}"]', state="detached")
    shown = await queue.locator("#queue tr[data-ticket]").count()
    assert await queue.inner_text('[data-count="breaching"]') == str(shown)
    assert await still_marked(queue)
    assert await still_marked(ticket)
    assert seen_ticket.problems == [] and seen_ticket.outside == []
    await closed(queue, seen_queue)


# ---------------------------------------------------------------- two agents, one ticket


async def test_a_second_agent_sees_who_is_here_typing_and_the_reply_live(desk: Desk) -> None:
    tid = await desk.open(tier="vip", subject="退款一直没到账", description="退款三天了还没到")
    first, seen_first = await desk.signed_in("agent-wang")
    second, seen_second = await desk.signed_in("agent-lin")
    for page in (second, first):
        await page.goto(f"{desk.url}/app/tickets/{tid}")
        await page.wait_for_selector("body[data-page=ticket]")
    presence = second.locator("[data-presence]")
    await presence.filter(has_text="agent-wang").wait_for()

    # What the stream says of typing: an ISO 8601 instant every browser's Date reads.
    await second.evaluate(
        """(id) => {
            window.__typing = null;
            new EventSource("/app/live?ticket=" + id).addEventListener("presence", (e) => {
                for (const v of JSON.parse(e.data)) if (v.typing_until) window.__typing = v.typing_until;
            });
        }""",
        tid,
    )
    await first.click("#reply")
    await first.keyboard.type("您好，退款正在处理")
    await presence.filter(has_text=STAFF_WORDS.gettext("typing…")).wait_for()
    await second.wait_for_function("() => window.__typing !== null")
    typing_until = await second.evaluate("window.__typing")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", typing_until)

    async with first.expect_response(lambda r: r.url.endswith("/actions/respond")) as answer:
        await first.click('form[data-action="respond"] button[type=submit]')
    assert (await answer.value).ok
    # Live, within a second of the answer (the page's own wait as the bound).
    await second.wait_for_selector(
        "ol.conversation li.customer-facing:has-text('您好，退款正在处理')", timeout=1000
    )
    # The first agent leaves: the second is alone on the ticket.
    await closed(first, seen_first)
    await presence.filter(
        has_text=STAFF_WORDS.gettext("Nobody else has this ticket open.")
    ).wait_for()
    await closed(second, seen_second)


# ---------------------------------------------------------------- a refusal, inline


async def test_a_refused_action_says_why_on_the_form(desk: Desk) -> None:
    tid = await desk.open(subject="订单一直显示处理中", description="下单后一直处理中")
    page, seen = await desk.signed_in("supervisor-chen")
    await page.goto(f"{desk.url}/app/tickets/{tid}")
    await open_form(page, "record_review_decision")
    await page.fill("#record_review_decision-decision", "继续观察")
    await page.click('form[data-action="record_review_decision"] button[type=submit]')
    refusal = page.locator('form[data-action="record_review_decision"] .refusal')
    await refusal.filter(has_text="no upgrade review is waiting for a decision").wait_for()
    await closed(page, seen, refused(409, "Conflict"))


# ---------------------------------------------------------------- a department's view


async def test_a_department_sees_its_own_work_orders_and_posts_progress(desk: Desk) -> None:
    # One customer, two tickets: tech holds a work order on one, finance on the other.
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    ours = await desk.open(
        customer_id=customer, subject="登录一直报错", description="登录时提示系统错误 500"
    )
    theirs = await desk.open(
        customer_id=customer, subject="提现没到账", description="提现三天没到账"
    )
    await desk.act(
        ours, "dispatches", {"departments": ["tech"], "note": "查登录服务"}, "agent-wang"
    )
    await desk.act(
        theirs, "dispatches", {"departments": ["finance"], "note": "查提现"}, "agent-wang"
    )

    page, seen = await desk.signed_in("tech-desk")
    await page.wait_for_selector(f'tr[data-ticket="{ours}"]')
    assert await page.locator(f'tr[data-ticket="{theirs}"]').count() == 0
    rows = await page.locator("#queue tr[data-ticket]").count()
    assert await page.inner_text('[data-count="all"]') == str(rows)
    await page.goto(f"{desk.url}/app/tickets/{ours}")
    # The customer's other tickets are listed only where tech holds a work order too.
    assert theirs not in await page.inner_html("ul.others")
    forms = await page.eval_on_selector_all(
        "form[data-action]", "forms => forms.map(f => f.dataset.action)"
    )
    assert forms == ["post_progress"]
    assert await page.locator("[data-script]").count() == 0

    await open_form(page, "post_progress")
    await page.fill("#post_progress-note", "已定位：登录服务证书过期，今晚更换")
    await submit(page, "post_progress")
    await page.wait_for_selector("ol.conversation li:has-text('已定位：登录服务证书过期')")

    # A forged token is refused, from the page's own fetch as from anywhere else.
    forged = await page.evaluate(
        """async (url) => (await fetch(url, {
            method: "POST", credentials: "same-origin",
            headers: {"X-CSRF-Token": "forged"},
            body: new URLSearchParams({note: "forged", action_id: "ws-forged"}),
        })).status""",
        f"/app/tickets/{ours}/actions/post_progress",
    )
    assert forged == 403
    # Another department's ticket is not this one's to open, nor to watch live (who
    # else has it open).
    watching = await page.evaluate(
        """async (url) => {
            const stop = new AbortController();
            const answer = await fetch(url, {signal: stop.signal});
            stop.abort();
            return answer.status;
        }""",
        f"/app/live?ticket={theirs}",
    )
    assert watching == 403
    await page.goto(f"{desk.url}/app/tickets/{theirs}")
    assert "403" in await page.inner_text("h1")
    await closed(page, seen, *[refused(403, "Forbidden")] * 3)


# ---------------------------------------------------------------- the keyboard


async def test_the_keyboard_moves_through_the_queue_and_the_ticket(desk: Desk) -> None:
    for subject in ("收不到验证码", "会员自动续费了", "订单地址填错了"):
        await desk.open(subject=subject, description=subject + "，请帮忙处理")
    page, seen = await desk.signed_in("agent-wang")
    await page.goto(f"{desk.url}/app/?view=all")
    await page.wait_for_selector("tr[data-ticket] >> nth=2")

    await page.keyboard.press("?")
    await page.wait_for_selector("dialog#help[open]")
    await page.keyboard.press("Escape")
    await page.wait_for_selector("dialog#help:not([open])", state="attached")

    rows = await page.eval_on_selector_all(
        "tr[data-ticket]", "rows => rows.map(r => r.dataset.ticket)"
    )
    selected = "document.querySelector('tr.selected')?.dataset.ticket"
    await page.keyboard.press("j")
    assert await page.evaluate(selected) == rows[0]
    await page.keyboard.press("j")
    assert await page.evaluate(selected) == rows[1]
    await page.keyboard.press("k")
    assert await page.evaluate(selected) == rows[0]

    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    await page.wait_for_selector("body[data-page=ticket]")
    await page.keyboard.press("n")
    assert await page.is_visible('form[data-composer="add_note"]')
    assert not await page.is_visible('form[data-composer="respond"]')
    await page.evaluate("document.activeElement.blur()")
    await page.keyboard.press("r")
    assert await page.is_visible('form[data-composer="respond"]')
    assert not await page.is_visible('form[data-composer="add_note"]')
    await page.evaluate("document.activeElement.blur()")
    await page.keyboard.press("a")
    await page.wait_for_selector("dd[data-assignee]:has-text('agent-wang')")
    # j on a ticket opens the queue's next one; u goes back to the queue.
    assert page.url.endswith(f"/app/tickets/{rows[0]}")
    async with page.expect_navigation(url=f"{desk.url}/app/tickets/{rows[1]}"):
        await page.keyboard.press("j")
    async with page.expect_navigation(url=f"{desk.url}/app/"):
        await page.keyboard.press("u")
    await closed(page, seen)


# ---------------------------------------------------------------- the agent's language


async def test_the_chosen_language_is_remembered_across_sign_ins(desk: Desk) -> None:
    page, seen = await desk.signed_in("agent-lin", locale="en-US")
    assert await page.get_attribute("html", "lang") == "en"
    async with page.expect_navigation():
        await page.select_option("select[name=locale]", "zh-Hant")
    assert await page.get_attribute("html", "lang") == "zh-Hant"

    async with page.expect_navigation():
        await page.click("form[action='/app/signout'] button")
    await sign_in(page, desk.url, desk.keys["agent-lin"])
    assert await page.get_attribute("html", "lang") == "zh-Hant"
    assert await page.input_value("select[name=locale]") == "zh-Hant"
    queue = i18n.Words("zh-Hant", POLICY.time_zone).gettext("Queue")
    assert queue == "工單佇列"
    assert queue in await page.inner_text("header.top nav")
    await closed(page, seen)


async def test_a_wrong_key_or_a_customers_key_is_refused_at_sign_in(desk: Desk) -> None:
    context = await desk.browser.new_context(viewport=VIEWPORT, locale="en-GB")
    page = await context.new_page()
    seen = watch(page, desk.url)
    for key in ("tfk_wrong", desk.keys["backend"], desk.keys["knowledge-editor"]):
        await page.goto(f"{desk.url}/app/signin")
        await page.fill("#key", key)
        await page.click("button[type=submit]")
        await page.wait_for_selector("p.refusal[role=alert]")
        assert page.url == f"{desk.url}/app/signin"
    # A page of the workspace without a session goes to the sign-in form.
    await page.goto(f"{desk.url}/app/?view=all")
    assert page.url == f"{desk.url}/app/signin"
    await closed(page, seen, *[refused(401, "Unauthorized")] * 3)


# ---------------------------------------------------------------- an API restart


async def test_a_page_reads_again_what_changed_while_the_api_restarted(desk: Desk) -> None:
    # By e-mail: a day to the first reply, nothing else happens to it meanwhile.
    tid = await desk.open(channel="email", subject="积分不见了", description="昨天的积分今天没了")
    page, seen = await desk.signed_in("agent-wang")
    await page.goto(f"{desk.url}/app/tickets/{tid}")
    await page.wait_for_selector("ol.conversation .delivery.ok")  # the acknowledgement
    await mark(page)
    note = "API 重启期间记下的备注"
    await desk.api.halt()
    try:
        await page.wait_for_selector(".live-state:not([hidden])")
        # The ticket goes on without the API: a note arrives while no page can hear.
        await desk.tickets.act(
            tid, AddNote(actor=Actor(id="agent-lin", role=Role.AGENT), text=note)
        )
    finally:
        await desk.api.start()
    await page.wait_for_selector(".live-state", state="hidden")
    await page.wait_for_selector(f"ol.conversation li:has-text('{note}')", timeout=5000)
    assert await still_marked(page)
    # Only the refused connections while the API was down.
    assert all("ERR_CONNECTION_REFUSED" in problem for problem in seen.problems), seen.problems
    assert seen.outside == []
    await page.context.close()


async def test_a_form_sent_while_the_api_is_down_is_sent_again_and_applied_once(
    desk: Desk,
) -> None:
    tid = await desk.open(channel="email", subject="发票抬头错了", description="发票抬头写错了")
    page, seen = await desk.signed_in("agent-wang")
    await page.goto(f"{desk.url}/app/tickets/{tid}")
    await page.wait_for_selector("ol.conversation .delivery.ok")
    note = "客户要求重开发票，已转财务"
    await page.keyboard.press("n")
    await page.fill("#note", note)
    await desk.api.halt()
    try:
        await page.click('form[data-action="add_note"] button[type=submit]')
        # No answer: the form says it sends again, with the same action id.
        retrying = page.locator('form[data-action="add_note"] .refusal')
        again = STAFF_WORDS.gettext("No answer yet: sending again with the same action id…")
        await retrying.filter(has_text=again).wait_for()
    finally:
        await desk.api.start()
    await retrying.wait_for(state="hidden")
    await page.wait_for_selector(f"ol.conversation li:has-text('{note}')")
    assert await page.locator(f"ol.conversation li:has-text('{note}')").count() == 1
    assert all("ERR_CONNECTION_REFUSED" in problem for problem in seen.problems), seen.problems
    assert seen.outside == []
    await page.context.close()


# ---------------------------------------------------------------- pictures for the docs


async def test_screenshots_of_the_queue_and_the_ticket(
    desk: Desk, payment_script: str, tmp_path: Path
) -> None:
    script = payment_script
    shown = await desk.open(
        tier="vip",
        locale="zh-TW",
        subject="支付失敗 扣款了但訂單沒成功",
        description="全部用戶都付不了款，扣款了但訂單顯示未支付",
    )
    await desk.open(tier="vip", subject="账户被盗 余额被转走", description="账户被盗，余额被转走了")
    await desk.open(channel="email", subject="发票怎么开", description="上个月的订单要开发票")
    await desk.open(channel="web_form", subject="提现失败", description="提现一直失败，钱没到账")
    await desk.act(shown, "assignment", {"agent_id": "agent-wang"}, "agent-wang")
    await desk.act(shown, "notes", {"text": "已联系支付通道值班"}, "agent-wang")
    replied = "您好，我們正在緊急處理支付問題，扣款會在修復後自動退回。"
    await desk.act(shown, "responses", {"message": replied}, "agent-wang")

    page, seen = await desk.signed_in("agent-wang")
    await page.goto(f"{desk.url}/app/?view=all")
    await page.wait_for_selector(f'tr[data-ticket="{shown}"]')
    queue_shot = tmp_path / "workspace-queue.png"
    await page.screenshot(path=str(queue_shot))

    await page.goto(f"{desk.url}/app/tickets/{shown}")
    await page.locator("ol.conversation li", has_text=replied).locator(".delivery.ok").wait_for()
    await page.click(f'[data-script="{script}"]')
    await page.wait_for_function("() => document.querySelector('#reply').value.length > 0")
    ticket_shot = tmp_path / "workspace-ticket.png"
    await page.screenshot(path=str(ticket_shot))
    for shot in (queue_shot, ticket_shot):
        assert shot.stat().st_size > 20_000  # rendered, not blank
        if os.environ.get("TICKETFLOW_DOCS_SCREENSHOTS"):
            shutil.copy(shot, DOCS / shot.name)
    await closed(page, seen)
