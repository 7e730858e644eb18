"""Every message reaches its recipient, in the customer's language (issue 9's acceptance).

The real dev server runs tickets and the outbox relay; deliveries go over real HTTP to
the dev receiver (`workers.receiver`, served by uvicorn on a free port) and over real
SMTP to aiosmtpd. The relay delivers every due row of its database, so this module has a
database of its own. Time runs 60 times faster (`time_scale`), so promises of seconds
and minutes pass in a test's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from babel.dates import format_skeleton
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.database import Pool
from activities.delivery import DeliveryConfig, OutboxRelay, SmtpConfig
from activities.event_store import EventStore
from activities.messages import MessageTemplates, TemplateError
from activities.outbox import Outbox
from activities.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_headers
from api.client import TicketClient
from tests.activities.factories import lifecycle
from tests.conftest import schema_of_its_own
from tests.waiting import eventually
from workers.devstack import free_port
from workers.main import build_worker, start_relay
from workers.receiver import PATH, Inbox, serve_receiver
from workflows.contracts import (
    CustomerMessage,
    Dispatch,
    EngagePartner,
    EventBatch,
    Handoff,
    HandoffFacts,
    HandoffKind,
    Intake,
    MessageKind,
    MessageParams,
    RelayRound,
)
from workflows.policy import DeliveryRetry, ServicePolicy
from workflows.primitives import Actor
from workflows.vocabulary import Channel, Priority, Role, Tier

T = TypeVar("T")
SECRET = "receiver-secret-" + "z" * 16
ZONE = "Europe/London"
AGENT = Actor(id="agent-7", role=Role.AGENT)
POLICY = ServicePolicy(
    time_scale=60,
    time_zone=ZONE,
    departments={**ServicePolicy().departments, "finance": "queue://finance"},
    # Hand-offs in the company's zh-Hans, but finance reads English and partners zh-Hant.
    staff_locales={"finance": "en", "partner:": "zh-Hant"},
    # Scaled by 60: first retry after 0.1 s, at most 0.5 s apart, given up after 5 s.
    delivery=DeliveryRetry(
        first_interval=timedelta(seconds=6),
        max_interval=timedelta(seconds=30),
        give_up_after=timedelta(minutes=5),
    ),
)


def held(read: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    """A probe of what a receiver holds in memory."""

    async def probe() -> T:
        return read()

    return probe


class Mailbox:
    """aiosmtpd's handler: every message the relay sent, as parsed e-mail."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        parsed = message_from_bytes(envelope.content, policy=email_policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"

    def of(self, ticket_id: str) -> list[EmailMessage]:
        return [m for m in self.messages if str(m["Idempotency-Key"]).startswith(ticket_id)]


@dataclass
class Desk:
    tickets: TicketClient
    pool: Pool
    inbox: Inbox
    finance: Inbox
    mail: Mailbox

    async def open(self, **fields: Any) -> str:
        intake = Intake(
            idempotency_key=f"delivery-{uuid.uuid4()}",
            customer_id=f"c-{uuid.uuid4().hex[:8]}",
            subject=fields.pop("subject", "会员怎么续费"),
            description=fields.pop("description", "请问会员到期后怎么续费?"),
            **fields,
        )
        opened = await self.tickets.open(intake)
        return opened.ticket_id

    async def rows(self, ticket_id: str) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            "SELECT kind, channel_or_recipient, dispatched_at, failed_at, attempts, rendered,"
            " locale FROM outbox WHERE ticket_id = $1 ORDER BY id",
            ticket_id,
        )

    async def event_types(self, ticket_id: str) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT type FROM ticket_events WHERE ticket_id = $1 ORDER BY seq", ticket_id
        )
        return [row["type"] for row in rows]


@pytest.fixture(scope="module")
async def own_database(database_url: str) -> AsyncIterator[Pool]:
    """The relay delivers every due row it sees: this module's rows only."""
    async with schema_of_its_own(database_url, "delivery") as pool:
        yield pool


@pytest.fixture(scope="module")
async def desk(dev_env: WorkflowEnvironment, own_database: Pool) -> AsyncIterator[Desk]:
    inbox, finance = Inbox(secret=SECRET), Inbox(secret=SECRET)
    ports = {"main": free_port(), "finance": free_port()}
    stop = asyncio.Event()
    receivers = [
        asyncio.create_task(serve_receiver(box, "127.0.0.1", ports[name], stop))
        for name, box in (("main", inbox), ("finance", finance))
    ]
    mail = Mailbox()
    smtp = Controller(mail, hostname="127.0.0.1", port=free_port())
    smtp.start()
    config = DeliveryConfig(
        webhook_url=f"http://127.0.0.1:{ports['main']}{PATH}",
        routes={
            "email": "smtp",
            "queue://finance": f"http://127.0.0.1:{ports['finance']}{PATH}",
            # Nobody listens on port 1: every try fails until the budget is spent.
            "partner:broken-co": "http://127.0.0.1:1/never",
        },
        secret=SecretStr(SECRET),
        smtp=SmtpConfig(host="127.0.0.1", port=smtp.port),
        poll_interval=timedelta(milliseconds=50),
        round=timedelta(seconds=5),
    )
    client: Client = dev_env.client
    task_queue = f"delivery-{uuid.uuid4()}"
    relay = OutboxRelay(own_database, POLICY, MessageTemplates.load(), config, client)
    worker = build_worker(client, task_queue, own_database, POLICY, relay=relay)
    running = asyncio.create_task(worker.run())
    await start_relay(client, task_queue)
    try:
        yield Desk(
            TicketClient(client, task_queue=task_queue, policy=POLICY),
            own_database,
            inbox,
            finance,
            mail,
        )
    finally:
        async for execution in client.list_workflows(
            f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"
        ):
            with contextlib.suppress(RPCError):
                await client.get_workflow_handle(execution.id).terminate("tests done")
        await worker.shutdown()
        await running
        await relay.close()
        smtp.stop()
        stop.set()
        await asyncio.gather(*receivers)


async def test_a_zh_hant_vip_gets_the_auto_reply_in_traditional_chinese(desk: Desk) -> None:
    # Live VIP: 30 s to a first response, half a second here; nobody answers.
    tid = await desk.open(channel=Channel.APP_CHAT, tier=Tier.VIP, locale="zh-TW")
    arrived = await eventually(
        held(lambda: [r for r in desk.inbox.of(tid) if r.kind == "customer_message:auto_reply"]),
        bool,
    )
    [reply] = arrived
    assert reply.locale == "zh-Hant"
    assert reply.text == "感謝您的耐心等候，客服馬上為您接入，請稍候。"
    # The supervisor on standby got the hand-off, in the same pass or the next.
    await eventually(
        held(lambda: [r for r in desk.inbox.of(tid) if r.kind == "supervisor_standby"]), bool
    )
    # The row is marked delivered just after the receiver answered: poll for the mark.
    rows = await eventually(
        lambda: desk.rows(tid), lambda rows: all(row["dispatched_at"] is not None for row in rows)
    )
    assert all(row["dispatched_at"] is not None for row in rows), rows


async def test_hand_offs_reach_staff_in_the_companys_language_and_zone(desk: Desk) -> None:
    # An English-speaking VIP nobody answers: the supervisors' standby alert is still in
    # the company's language, not the customer's.
    tid = await desk.open(
        channel=Channel.APP_CHAT,
        tier=Tier.VIP,
        subject="Cannot withdraw",
        description="My withdrawal keeps failing",
    )
    expected_by = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
    await desk.tickets.act(tid, Dispatch(actor=AGENT, departments=["finance"], note="查提现通道"))
    await desk.tickets.act(
        tid,
        EngagePartner(actor=AGENT, partner="unionpay", problem="核对回单", expected_by=expected_by),
    )

    def handed(kind: str) -> Callable[[], Awaitable[list[Any]]]:
        return held(lambda: [r for r in desk.inbox.of(tid) if r.kind == kind])

    [standby] = await eventually(handed("supervisor_standby"), bool)
    assert standby.text.startswith(f"工单 {tid}（"), standby.text
    assert "无人首次响应：请安排人工待命" in standby.text
    assert standby.locale == "zh-Hans"
    # Finance reads English (the policy's override for that department).
    [order] = await eventually(held(lambda: desk.finance.of(tid)), bool)
    assert order.text.startswith(f"New work order {tid} (") and order.text.endswith(": 查提现通道")
    assert order.locale == "en"
    # Partners read zh-Hant; the time they are expected by is in the company's zone.
    [contact] = await eventually(handed("partner_contact"), bool)
    local = expected_by.astimezone(ZoneInfo(ZONE))
    assert (
        f"期望答覆時間：{local.year}年{local.month}月{local.day}日 {local:%H:%M}（" in contact.text
    )
    assert "核對" not in contact.text and "核对回单" in contact.text  # a person's words, as said
    assert contact.locale == "zh-Hant"


async def test_an_english_email_is_acknowledged_in_english_in_the_policy_zone(desk: Desk) -> None:
    tid = await desk.open(
        channel=Channel.EMAIL, locale="en-GB", subject="Refund", description="Where is my refund?"
    )
    [mail] = await eventually(held(lambda: desk.mail.of(tid)), bool)
    view = await desk.tickets.view(tid)
    assert view.deadlines.sla is not None
    due = view.deadlines.sla
    text = mail.get_content()
    assert text.startswith("Hello, we have received your request")
    hour = format_skeleton("Hm", due, tzinfo=ZoneInfo(ZONE), locale="en")
    assert hour in text
    assert "(GMT)" in text or "British" in text or "Greenwich" in text
    assert mail["Subject"] == "An update on your request"
    assert mail["To"].endswith("@customers.invalid")


async def test_a_department_down_for_a_while_gets_its_work_order_once(desk: Desk) -> None:
    tid = await desk.open(channel=Channel.EMAIL, locale="zh-CN")
    desk.finance.down = True
    await desk.tickets.act(tid, Dispatch(actor=AGENT, departments=["finance"], note="查账"))
    # Finance answers 503 for a while; the customer's messages go on meanwhile.
    rows = await eventually(
        lambda: desk.rows(tid),
        lambda rows: any(r["kind"] == "work_order" and r["attempts"] >= 3 for r in rows),
    )
    order = next(r for r in rows if r["kind"] == "work_order")
    assert order["dispatched_at"] is None and order["failed_at"] is None
    assert desk.finance.of(tid) == []
    assert len(await eventually(held(lambda: desk.mail.of(tid)), bool)) == 1  # the acknowledgement

    desk.finance.down = False
    [received] = await eventually(held(lambda: desk.finance.of(tid)), bool)
    assert received.kind == "work_order"
    assert received.copies == 1
    # The relay marks the row once the answer is back: a moment after the receipt.
    rows = await eventually(
        lambda: desk.rows(tid), lambda rows: all(r["dispatched_at"] for r in rows)
    )
    assert [r["dispatched_at"] is not None for r in rows] == [True, True]
    assert received.copies == 1  # and it was sent once


async def test_a_destination_that_never_answers_is_reported_and_a_supervisor_told(
    desk: Desk,
) -> None:
    tid = await desk.open(channel=Channel.WEB_FORM, locale="zh-CN")
    view = await desk.tickets.act(
        tid,
        EngagePartner(
            actor=AGENT,
            partner="broken-co",
            problem="核对回单",
            expected_by=(await _now(desk)) + timedelta(days=1),
        ),
    )
    assert view.status == "waiting_on_partner"
    types = await eventually(
        lambda: desk.event_types(tid), lambda types: "delivery_failed" in types, within=30
    )
    assert types.count("delivery_failed") == 1
    [alert] = await eventually(
        held(lambda: [r for r in desk.inbox.of(tid) if r.kind == "delivery_failed"]), bool
    )
    assert alert.destination == "queue://cs-supervisors"
    assert "partner:broken-co" in alert.text
    failed = [r for r in await desk.rows(tid) if r["failed_at"] is not None]
    assert [r["channel_or_recipient"] for r in failed] == ["partner:broken-co"]
    assert failed[0]["attempts"] > 1


async def _now(desk: Desk) -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


# ---------------------------------------------------------------- the parts alone


def test_the_webhook_signature_is_the_documented_scheme() -> None:
    body = '{"id":"t:1:agent_reply:1","text":"您好"}'.encode()
    headers = signed_headers(SECRET, body, timestamp=1767225600)
    expected = hmac.new(SECRET.encode(), b"1767225600." + body, hashlib.sha256).hexdigest()
    assert headers == {TIMESTAMP_HEADER: "1767225600", SIGNATURE_HEADER: f"sha256={expected}"}


def test_a_template_with_an_unknown_parameter_is_refused_at_start(tmp_path: Path) -> None:
    overrides = tmp_path / "messages.toml"
    overrides.write_text(
        '[zh-Hant]\nacknowledgement = "{{ customer_name }} 您好，預計 {{ expect_progress_by | when }}"\n',
        encoding="utf-8",
    )
    with pytest.raises(TemplateError) as refused:
        MessageTemplates.load(overrides)
    message = str(refused.value)
    assert "zh-Hant.acknowledgement" in message
    assert "customer_name" in message
    assert "expect_progress_by" in message  # what it may use instead


def test_every_kind_has_words_in_every_locale() -> None:
    templates = MessageTemplates.load()
    assert {"zh-Hans", "zh-Hant", "en"} <= set(templates.locales)
    broken = Path(__file__)  # not TOML at all
    with pytest.raises(TemplateError, match="message templates file"):
        MessageTemplates.load(broken)


def test_times_are_in_the_customers_zone_when_the_intake_gives_one() -> None:
    due = datetime(2026, 11, 30, 9, 33, tzinfo=UTC)
    message = CustomerMessage(
        ticket_id="t",
        dedupe_key="t:2:acknowledgement:1",
        channel=Channel.EMAIL,
        customer_id="c-1",
        locale="en-US",
        time_zone="America/New_York",
        kind=MessageKind.ACKNOWLEDGEMENT,
        params=MessageParams(expect_progress_by=due),
    )
    rendered = MessageTemplates.load().render(message, "Asia/Shanghai")
    assert rendered.locale == "en"
    assert "Nov 30, 2026 04:33 (Eastern Time)" in rendered.text
    in_policy_zone = MessageTemplates.load().render(
        message.model_copy(update={"time_zone": None, "locale": "zh-HK"}), "Asia/Shanghai"
    )
    assert in_policy_zone.locale == "zh-Hant"
    assert "2026年11月30日 17:33（中國時間）" in in_policy_zone.text


def test_staff_wording_is_laid_over_and_checked_like_the_customers(tmp_path: Path) -> None:
    overrides = tmp_path / "messages.toml"
    overrides.write_text(
        '[staff.en]\nrisk_control = "Risk: {{ tag }}"\n'
        '[staff.zh-Hant]\nwork_order = "{{ customer_name }}"\n',
        encoding="utf-8",
    )
    with pytest.raises(TemplateError) as refused:
        MessageTemplates.load(overrides)
    assert "staff templates: zh-Hant.work_order: unknown parameter(s) customer_name" in str(
        refused.value
    )
    overrides.write_text('[staff.en]\nrisk_control = "Risk: {{ tag }}"\n', encoding="utf-8")
    handoff = Handoff(
        ticket_id="t",
        dedupe_key="t:3:risk_control:1",
        kind=HandoffKind.RISK_CONTROL,
        recipients=["risk_control"],
        tag="安全-登錄-A級",
        priority=Priority.A,
        facts=HandoffFacts(),
    )
    rendered = MessageTemplates.load(overrides).render_handoff(handoff, "en-GB", ZONE)
    assert (rendered.locale, rendered.text) == ("en", "Risk: 安全-登錄-A級")


def test_a_template_that_cannot_say_its_parameters_is_refused_at_start(tmp_path: Path) -> None:
    overrides = tmp_path / "messages.toml"
    overrides.write_text('[en]\nauto_reply = "Sorry: {{ within | when }}"\n', encoding="utf-8")
    with pytest.raises(TemplateError, match=r"en\.auto_reply: cannot render"):
        MessageTemplates.load(overrides)


def test_an_operators_wording_of_a_kind_wins_over_the_shipped_variants(tmp_path: Path) -> None:
    overrides = tmp_path / "messages.toml"
    overrides.write_text('[en]\nauto_reply = "One moment, please."\n', encoding="utf-8")
    templates = MessageTemplates.load(overrides)
    for live in (True, False):
        message = CustomerMessage(
            ticket_id="t",
            dedupe_key="t:2:auto_reply:1",
            channel=Channel.APP_CHAT if live else Channel.EMAIL,
            live=live,
            customer_id="c-1",
            locale="en",
            kind=MessageKind.AUTO_REPLY,
            params=MessageParams(within=timedelta(hours=36)),
        )
        assert templates.render(message, ZONE).text == "One moment, please."


def test_durations_are_said_exactly_and_missing_parameters_say_nothing() -> None:
    templates = MessageTemplates.load()
    late = CustomerMessage(
        ticket_id="t",
        dedupe_key="t:2:auto_reply:1",
        channel=Channel.EMAIL,
        customer_id="c-1",
        locale="zh-Hant-CN",
        kind=MessageKind.AUTO_REPLY,
        params=MessageParams(within=timedelta(hours=36)),
    )
    assert "36 小時" in templates.render(late, ZONE).text
    result = late.model_copy(
        update={"kind": MessageKind.RESULT, "params": MessageParams(text="已退款")}
    )
    assert templates.render(result, ZONE).text == "已退款"


@contextlib.asynccontextmanager
async def webhook(inbox: Inbox) -> AsyncIterator[str]:
    """A real receiver for `inbox` on a free port, for as long as the block: its URL."""
    port = free_port()
    stop = asyncio.Event()
    receiving = asyncio.create_task(serve_receiver(inbox, "127.0.0.1", port, stop))
    try:
        yield f"http://127.0.0.1:{port}{PATH}"
    finally:
        stop.set()
        await receiving


class CountingRelay(OutboxRelay):
    """The real relay, telling the test how each of its passes went."""

    passes: list[RelayRound]

    async def deliver_once(self, claimed: asyncio.Future[int] | None = None) -> RelayRound:
        passed = await super().deliver_once(claimed)
        self.passes.append(passed)
        return passed


async def test_a_commit_that_queues_rows_wakes_an_idle_relay(database_url: str) -> None:
    """Rows queued while the relay idles go out at once, not at its next look: here it
    looks once an hour, so only the commit's notification can have woken it."""
    inbox = Inbox(secret=SECRET)
    async with webhook(inbox) as url, schema_of_its_own(database_url, "relay_wake") as pool:
        config = DeliveryConfig(
            webhook_url=url,
            secret=SecretStr(SECRET),
            poll_interval=timedelta(hours=1),
        )
        relay = CountingRelay(pool, POLICY, MessageTemplates.load(), config, None)
        relay.passes = []
        ending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        rounds = asyncio.create_task(relay.deliver_for(timedelta(minutes=5), stopping=ending))
        try:
            # The relay found nothing and idles: the next pass is an hour away.
            await eventually(held(lambda: list(relay.passes)), lambda passes: len(passes) >= 1)
            assert relay.passes == [RelayRound()]
            ticket_id = await _queue_work_order(EventStore(pool, Outbox(pool, POLICY)))
            arrived = await eventually(held(lambda: inbox.of(ticket_id)), bool, within=10)
            assert [r.kind for r in arrived] == ["work_order"]
        finally:
            ending.set_result(None)
            await rounds
            await relay.close()


async def test_a_live_relay_keeps_its_rows_past_the_lease_and_a_dead_ones_go_on(
    database_url: str,
) -> None:
    """A destination slower than the lease: the relay sending keeps renewing its row, so
    a second relay never sends it too. Then a relay that dies holding a row (it claimed
    it and stopped, as after kill -9) holds it one lease only: another delivers it."""
    inbox = Inbox(secret=SECRET, hold=asyncio.Event())
    async with webhook(inbox) as url, schema_of_its_own(database_url, "relay_lease") as pool:
        config = DeliveryConfig(
            webhook_url=url,
            secret=SecretStr(SECRET),
            poll_interval=timedelta(milliseconds=50),
            lease=timedelta(seconds=1),
        )
        first = CountingRelay(pool, POLICY, MessageTemplates.load(), config, None)
        second = CountingRelay(pool, POLICY, MessageTemplates.load(), config, None)
        first.passes, second.passes = [], []
        store = EventStore(pool, Outbox(pool, POLICY))
        ending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        rounds = [asyncio.create_task(first.deliver_for(timedelta(minutes=5), stopping=ending))]
        try:
            slow = await _queue_work_order(store)
            await eventually(held(lambda: inbox.requests), lambda n: n == 1)
            rounds.append(
                asyncio.create_task(second.deliver_for(timedelta(minutes=5), stopping=ending))
            )
            # The first relay's lease moves on, again and again, while the second looks.
            seen: set[Any] = set()

            async def leases() -> int:
                seen.add(await pool.fetchval("SELECT next_attempt_at FROM outbox LIMIT 1"))
                return len(seen)

            assert await eventually(leases, lambda n: n >= 4) >= 4
            assert len(second.passes) >= 3 and second.passes[-1] == RelayRound()
            assert inbox.requests == 1
            inbox.hold.set()  # type: ignore[union-attr]
            arrived = await eventually(held(lambda: inbox.of(slow)), bool)
            assert [r.copies for r in arrived] == [1]  # sent once, by the first relay

            # A relay that claimed a row and died: the row waits one lease, then goes.
            ending.set_result(None)
            await asyncio.gather(*rounds)
            inbox.hold = None
            dead = await _queue_work_order(store)
            leased = await pool.execute(
                "UPDATE outbox SET attempts = attempts + 1,"
                " next_attempt_at = now() + $2::interval WHERE ticket_id = $1",
                dead,
                config.lease,
            )
            assert leased == "UPDATE 1"
            ending = asyncio.get_running_loop().create_future()
            rounds = [
                asyncio.create_task(second.deliver_for(timedelta(minutes=5), stopping=ending))
            ]
            taken_over = await eventually(held(lambda: inbox.of(dead)), bool, within=10)
            assert [r.copies for r in taken_over] == [1]
        finally:
            if inbox.hold is not None:
                inbox.hold.set()  # no send left waiting on the receiver
            if not ending.done():
                ending.set_result(None)
            await asyncio.gather(*rounds)
            await first.close()
            await second.close()


async def _queue_work_order(store: EventStore) -> str:
    """A ticket's first event, with a work order to tech."""
    ticket_id = f"ticket-{uuid.uuid4().hex[:24]}"
    handoff = Handoff(
        ticket_id=ticket_id,
        dedupe_key=f"{ticket_id}:1:work_order",
        kind=HandoffKind.WORK_ORDER,
        recipients=["tech"],
        summary="s",
        tag="t",
        priority=Priority.E,
    )
    batch = EventBatch(ticket_id=ticket_id, events=lifecycle(ticket_id)[:1], handoffs=[handoff])
    await store.append_events(batch)
    return ticket_id
