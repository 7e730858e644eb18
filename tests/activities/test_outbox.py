"""Outbox activities against a real PostgreSQL: one row per message or recipient, once."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import all_activities
from activities.database import Pool
from activities.event_store import EventStore
from activities.outbox import Outbox
from tests.activities.factories import event, new_ticket_id
from workflows.activity_names import HANDOFF_ACTIVITY
from workflows.contracts import (
    CustomerMessage,
    EventBatch,
    Handoff,
    HandoffKind,
    MessageKind,
    MessageParams,
)
from workflows.events import Dispatched, EventType
from workflows.policy import ServicePolicy
from workflows.primitives import Actor
from workflows.vocabulary import Channel, Priority, Role

POLICY = ServicePolicy()


@pytest.fixture
def outbox(pg_pool: Pool) -> Outbox:
    return Outbox(pg_pool, POLICY)


async def rows_of(pool: Pool, ticket_id: str) -> list[dict[str, Any]]:
    records = await pool.fetch(
        "SELECT dedupe_key, kind, channel_or_recipient, payload, dispatched_at"
        " FROM outbox WHERE ticket_id = $1 ORDER BY id",
        ticket_id,
    )
    return [dict(record) for record in records]


def message(ticket_id: str) -> CustomerMessage:
    return CustomerMessage(
        ticket_id=ticket_id,
        dedupe_key=f"{ticket_id}:msg:1",
        channel=Channel.APP_CHAT,
        customer_id="cust-42",
        locale="zh-CN",
        kind=MessageKind.ACKNOWLEDGEMENT,
        params=MessageParams(expect_progress_by=datetime(2025, 3, 3, 9, tzinfo=UTC)),
    )


def handoff(ticket_id: str, kind: HandoffKind, recipients: list[str]) -> Handoff:
    return Handoff(
        ticket_id=ticket_id,
        dedupe_key=f"{ticket_id}:{kind.value}:1",
        kind=kind,
        recipients=recipients,
        summary="payment debited twice",
        tag="故障-支付-E級",
        priority=Priority.E,
        data={"app_version": "8.1.0"},
    )


# ---------------------------------------------------------------- customer messages


async def test_customer_message_is_enqueued_once(outbox: Outbox, pg_pool: Pool) -> None:
    ticket_id = new_ticket_id()
    sent = message(ticket_id)

    await outbox.notify_customer(sent)
    await outbox.notify_customer(sent)  # a retried activity

    [row] = await rows_of(pg_pool, ticket_id)
    assert row["dedupe_key"] == sent.dedupe_key
    assert row["kind"] == "customer_message:acknowledgement"
    assert row["channel_or_recipient"] == "app_chat"
    assert row["payload"] == sent.model_dump(mode="json")
    assert CustomerMessage.model_validate(row["payload"]) == sent
    assert row["dispatched_at"] is None


async def test_messages_with_different_keys_are_all_kept(outbox: Outbox, pg_pool: Pool) -> None:
    ticket_id = new_ticket_id()
    first = message(ticket_id)
    second = first.model_copy(update={"dedupe_key": f"{ticket_id}:msg:2"})
    await outbox.notify_customer(first)
    await outbox.notify_customer(second)
    assert len(await rows_of(pg_pool, ticket_id)) == 2


# ---------------------------------------------------------------- hand-offs


async def test_work_order_writes_one_row_per_department(outbox: Outbox, pg_pool: Pool) -> None:
    ticket_id = new_ticket_id()
    order = handoff(ticket_id, HandoffKind.WORK_ORDER, ["tech", "operations"])

    await outbox.open_work_order(order)
    await outbox.open_work_order(order)

    rows = await rows_of(pg_pool, ticket_id)
    assert [(r["dedupe_key"], r["kind"], r["channel_or_recipient"]) for r in rows] == [
        (f"{order.dedupe_key}:tech", "work_order", "queue://tech-oncall"),
        (f"{order.dedupe_key}:operations", "work_order", "queue://operations"),
    ]
    assert all(Handoff.model_validate(r["payload"]) == order for r in rows)


async def test_a_retry_after_a_partial_delivery_adds_only_the_missing(
    outbox: Outbox, pg_pool: Pool
) -> None:
    ticket_id = new_ticket_id()
    group = handoff(ticket_id, HandoffKind.EMERGENCY_GROUP, ["tech"])
    await outbox.convene_emergency_group(group)
    await outbox.convene_emergency_group(
        group.model_copy(update={"recipients": ["tech", "customer_service"]})
    )
    rows = await rows_of(pg_pool, ticket_id)
    assert [r["channel_or_recipient"] for r in rows] == [
        "queue://tech-oncall",
        "queue://cs-supervisors",
    ]


async def test_partner_contact_goes_to_the_partner(outbox: Outbox, pg_pool: Pool) -> None:
    ticket_id = new_ticket_id()
    contact = handoff(ticket_id, HandoffKind.PARTNER_CONTACT, ["alipay"])
    await outbox.contact_partner(contact)
    [row] = await rows_of(pg_pool, ticket_id)
    assert (row["kind"], row["channel_or_recipient"]) == ("partner_contact", "partner:alipay")
    assert row["dedupe_key"] == f"{contact.dedupe_key}:alipay"


@pytest.mark.parametrize("kind", [HandoffKind.SUPERVISOR_STANDBY, HandoffKind.SLA_ESCALATION])
async def test_supervisor_alerts_serve_both_kinds(
    outbox: Outbox, pg_pool: Pool, kind: HandoffKind
) -> None:
    ticket_id = new_ticket_id()
    await outbox.alert_supervisor(handoff(ticket_id, kind, [POLICY.supervisor_queue]))
    [row] = await rows_of(pg_pool, ticket_id)
    assert (row["kind"], row["channel_or_recipient"]) == (kind.value, "queue://cs-supervisors")


async def test_every_handoff_kind_reaches_its_activity(pg_pool: Pool) -> None:
    by_name = {activity_name(fn): fn for fn in all_activities(pg_pool, POLICY)}
    ticket_id = new_ticket_id()
    for kind, name in HANDOFF_ACTIVITY.items():
        recipients = ["acme"] if kind is HandoffKind.PARTNER_CONTACT else ["tech"]
        await by_name[name](handoff(ticket_id, kind, recipients))
    kinds = {row["kind"] for row in await rows_of(pg_pool, ticket_id)}
    assert kinds == {kind.value for kind in HandoffKind}


async def test_unknown_department_is_bad_data_and_writes_nothing(
    outbox: Outbox, pg_pool: Pool
) -> None:
    ticket_id = new_ticket_id()
    order = handoff(ticket_id, HandoffKind.WORK_ORDER, ["tech", "legal"])

    with pytest.raises(ApplicationError) as raised:
        await outbox.open_work_order(order)

    assert raised.value.type == "BadData"
    assert raised.value.non_retryable
    assert "legal" in str(raised.value)
    assert await rows_of(pg_pool, ticket_id) == []


async def test_unknown_department_fails_through_temporal_too(outbox: Outbox) -> None:
    order = handoff(new_ticket_id(), HandoffKind.PROGRESS_REMINDER, ["legal"])
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(outbox.remind_department, order)
    assert (raised.value.type, raised.value.non_retryable) == ("BadData", True)


async def test_handoff_sent_to_the_wrong_activity_is_bad_data(outbox: Outbox) -> None:
    misrouted = handoff(new_ticket_id(), HandoffKind.RISK_CONTROL, ["risk_control"])
    with pytest.raises(ApplicationError) as raised:
        await outbox.open_work_order(misrouted)
    assert (raised.value.type, raised.value.non_retryable) == ("BadData", True)


async def test_handoff_without_recipients_is_bad_data(outbox: Outbox) -> None:
    with pytest.raises(ApplicationError) as raised:
        await outbox.start_risk_control(handoff(new_ticket_id(), HandoffKind.RISK_CONTROL, []))
    assert raised.value.type == "BadData"


# ---------------------------------------------------------------- stored with the events


def effects_batch(ticket_id: str, *, departments: list[str]) -> EventBatch:
    return EventBatch(
        ticket_id=ticket_id,
        events=[
            event(ticket_id, 1, EventType.TICKET_OPENED, {"priority": "E"}),
            event(ticket_id, 2, EventType.DISPATCHED, {"departments": departments}),
        ],
        messages=[message(ticket_id)],
        handoffs=[
            handoff(ticket_id, HandoffKind.EMERGENCY_GROUP, ["tech"]),
            handoff(ticket_id, HandoffKind.WORK_ORDER, departments),
        ],
    )


async def test_effects_are_stored_with_their_events_once(outbox: Outbox, pg_pool: Pool) -> None:
    store = EventStore(pg_pool, outbox)
    ticket_id = new_ticket_id()
    sent = effects_batch(ticket_id, departments=["tech", "finance"])

    assert await store.append_events(sent) == 2
    assert await store.append_events(sent) == 0  # a retried activity

    rows = await rows_of(pg_pool, ticket_id)
    assert [(r["kind"], r["channel_or_recipient"]) for r in rows] == [
        ("customer_message:acknowledgement", "app_chat"),
        ("emergency_group", "queue://tech-oncall"),
        ("work_order", "queue://tech-oncall"),
        ("work_order", "queue://finance"),
    ]
    assert [e.seq for e in await store.events(ticket_id)] == [1, 2]


async def test_effects_roll_back_with_their_events(outbox: Outbox, pg_pool: Pool) -> None:
    store = EventStore(pg_pool, outbox)
    ticket_id = new_ticket_id()
    sent = effects_batch(ticket_id, departments=["tech"])
    # An actor id PostgreSQL cannot store (a NUL; contracts refuse it, old payloads may not).
    sent.events[1].actor = Actor.model_construct(id="agent\x00x", role=Role.AGENT)

    with pytest.raises(ApplicationError) as raised:
        await store.append_events(sent)

    assert raised.value.type == "BadData"
    assert await rows_of(pg_pool, ticket_id) == []
    assert await store.events(ticket_id) == []


async def test_unknown_department_is_kept_as_unroutable_with_the_events(
    outbox: Outbox, pg_pool: Pool
) -> None:
    """The ticket's policy knew a department the worker's routing does not: nothing is
    lost, and the relay and operators can find the row."""
    store = EventStore(pg_pool, outbox)
    ticket_id = new_ticket_id()

    assert await store.append_events(effects_batch(ticket_id, departments=["tech", "legal"])) == 2

    destinations = [r["channel_or_recipient"] for r in await rows_of(pg_pool, ticket_id)]
    assert destinations[-2:] == ["queue://tech-oncall", "unroutable:legal"]


async def test_store_without_outbox_refuses_effects(pg_pool: Pool) -> None:
    ticket_id = new_ticket_id()
    with pytest.raises(RuntimeError, match="without an outbox"):
        await EventStore(pg_pool).append_events(effects_batch(ticket_id, departments=["tech"]))
    assert await rows_of(pg_pool, ticket_id) == []


async def test_effects_of_another_ticket_are_bad_data(outbox: Outbox, pg_pool: Pool) -> None:
    ticket_id = new_ticket_id()
    sent = effects_batch(ticket_id, departments=["tech"])
    sent.messages.append(message(new_ticket_id()))
    with pytest.raises(ApplicationError) as raised:
        await EventStore(pg_pool, outbox).append_events(sent)
    assert raised.value.type == "BadData"
    assert await rows_of(pg_pool, ticket_id) == []


# ---------------------------------------------------------------- registration


def activity_name(fn: Any) -> str:
    definition = activity._Definition.from_callable(fn)
    assert definition is not None and definition.name is not None
    return definition.name


def test_all_activities_have_distinct_names(pg_pool: Pool) -> None:
    names = [activity_name(fn) for fn in all_activities(pg_pool, POLICY)]
    assert len(names) == len(set(names)) == 15
    assert set(HANDOFF_ACTIVITY.values()) <= set(names)
    assert {
        "claim_intake",
        "append_events",
        "send_handoffs",
        "notify_customer",
        "count_openings",
        "sample_week",
        "record_review",
    } <= set(names)


def test_handoff_mapping_covers_every_kind() -> None:
    assert set(HANDOFF_ACTIVITY) == set(HandoffKind)


def test_activity_names_import_without_database_driver() -> None:
    """Workflow code imports workflows.activity_names; asyncpg must not come along, nor
    the activities package."""
    probe = (
        "import sys, workflows.activity_names; "
        "heavy = {'asyncpg', 'structlog', 'activities', 'activities.outbox', "
        "'activities.event_store'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[]"


async def test_nul_in_free_text_is_stored_as_a_replacement_character(
    outbox: Outbox, pg_pool: Pool
) -> None:
    """jsonb cannot hold NUL; a customer's pasted text must not fail the ticket's append."""
    store = EventStore(pg_pool, outbox)
    ticket_id = new_ticket_id()
    sent = effects_batch(ticket_id, departments=["tech"])
    dispatch = sent.events[1].data
    assert isinstance(dispatch, Dispatched)
    dispatch.note = "crash\x00log"
    sent.handoffs[1].data.description = "app\x00crash"

    assert await store.append_events(sent) == 2

    [_, dispatched] = await store.events(ticket_id)
    assert isinstance(dispatched.data, Dispatched)
    assert dispatched.data.note == "crash\ufffdlog"
    rows = await rows_of(pg_pool, ticket_id)
    assert rows[-1]["payload"]["data"]["description"] == "app\ufffdcrash"
