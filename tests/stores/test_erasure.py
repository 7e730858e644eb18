"""Erasure on real PostgreSQL, field by field: every text field of every event type is
filled with a phone number of its own, the events go through the real event store, the
customer is erased, and every column of every table is scanned. Only a field whose model
says why it holds no personal data (`workflows.events.NotPersonal`) may keep its text."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from activities.database import Pool
from activities.event_store import EventStore
from activities.outbox import Outbox
from stores.erasure import erase_customer
from tests.activities.factories import AGENT, MINIMAL, batch, event, new_ticket_id
from tests.conftest import schema_of_its_own
from workflows.contracts import CustomerMessage, Handoff, HandoffKind, MessageKind, MessageParams
from workflows.events import PAYLOADS, EventType, not_personal
from workflows.policy import ServicePolicy
from workflows.primitives import Actor
from workflows.vocabulary import Channel, Priority, Role

POLICY = ServicePolicy()
# Each field gets `<run><number>13812345678`: a phone number a customer might type, and
# a number that says which field it was put in.
PHONE = "13812345678"


@pytest.fixture
async def own_pool(database_url: str) -> AsyncIterator[Pool]:
    # A schema of its own, so the scan below sees this test's rows and no one else's.
    async with schema_of_its_own(database_url, "erasure") as pool:
        yield pool


def text_paths(schema: dict[str, Any], defs: dict[str, Any]) -> list[list[str]]:
    """Where a JSON schema takes free text: a string with no enum, const or format, in a
    property, a list or a nested object. Read from the schema, not from the code under
    test, so a field the code forgets is still filled."""
    if "$ref" in schema:
        return text_paths(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in schema:
        return [path for option in schema["anyOf"] for path in text_paths(option, defs)]
    kind = schema.get("type")
    if kind == "string":
        plain = not {"enum", "const", "format"} & set(schema)
        return [[]] if plain else []
    if kind == "array":
        return [["[]", *path] for path in text_paths(schema.get("items", {}), defs)]
    if kind == "object":
        return [
            [name, *path]
            for name, field in schema.get("properties", {}).items()
            for path in text_paths(field, defs)
        ]
    return []


class Markers:
    def __init__(self) -> None:
        self.run = f"x{uuid.uuid4().hex[:8]}x"
        self.fields: dict[str, str] = {}

    def new(self, where: str) -> str:
        marker = f"{self.run}{len(self.fields):03d}{PHONE}"
        self.fields[marker] = where
        return marker

    def found_in(self, text: str) -> set[str]:
        return {self.fields[m] for m in re.findall(rf"{self.run}\d{{3}}{PHONE}", text)}


def put(data: dict[str, Any], path: list[str], value: str) -> None:
    """Set the text at `path`: a field, a list of text (`[]`), or a nested object's field."""
    name, *rest = path
    if not rest:
        data[name] = value
    elif rest == ["[]"]:
        data[name] = [value]
    else:
        nested = data.get(name)
        data[name] = nested = dict(nested) if isinstance(nested, dict) else {}
        put(nested, rest, value)


def filled(kind: EventType, markers: Markers, customer_id: str) -> dict[str, Any]:
    """A valid payload of `kind` with a marker of its own in every text field."""
    schema = PAYLOADS[kind].model_json_schema()
    data = dict(MINIMAL[kind])
    for path in text_paths(schema, schema.get("$defs", {})):
        where = f"{kind.value}.{'.'.join(step for step in path if step != '[]')}"
        put(data, path, customer_id if path == ["customer_id"] else markers.new(where))
    return data


async def every_column(pool: Pool) -> str:
    """Every value of every column of every table of the schema, one line per value."""
    columns = await pool.fetch(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
    )
    lines = []
    for column in columns:
        table, name = column["table_name"], column["column_name"]
        rows = await pool.fetch(f'SELECT "{name}"::text AS value FROM "{table}"')
        lines += [f"{table}.{name}: {row['value']}" for row in rows if row["value"]]
    return "\n".join(lines)


async def test_every_text_field_of_every_event_type_is_erased_unless_it_says_why_not(
    own_pool: Pool,
) -> None:
    markers = Markers()
    customer_id = f"cust-{markers.run}"
    customer = Actor(id=customer_id, role=Role.CUSTOMER)
    ticket_id = new_ticket_id()
    events = [
        event(
            ticket_id,
            seq,
            kind,
            filled(kind, markers, customer_id),
            actor=customer if kind.value.startswith(("customer", "csat", "nps")) else AGENT,
        )
        for seq, kind in enumerate(EventType, start=1)
    ]
    # What the ticket sent on: a reply in the customer's words, a hand-off quoting them.
    said = markers.new("outbox: a customer message's words")
    quoted = markers.new("outbox: a hand-off's summary")
    sent = batch(events).model_copy(
        update={
            "messages": [
                CustomerMessage(
                    ticket_id=ticket_id,
                    dedupe_key=f"{ticket_id}:9:reply",
                    event_seq=9,
                    channel=Channel.EMAIL,
                    customer_id=customer_id,
                    locale="zh-CN",
                    kind=MessageKind.AGENT_REPLY,
                    params=MessageParams(text=said),
                )
            ],
            "handoffs": [
                Handoff(
                    ticket_id=ticket_id,
                    dedupe_key=f"{ticket_id}:11:work_order",
                    event_seq=11,
                    kind=HandoffKind.WORK_ORDER,
                    recipients=["tech"],
                    summary=quoted,
                    tag="故障-支付-A級",
                    priority=Priority.A,
                )
            ],
        }
    )
    store = EventStore(own_pool, Outbox(own_pool, POLICY))
    assert await store.append_events(sent) == len(events)
    before = await every_column(own_pool)
    # Every marker went in (the outbox's through the hand-off's one row per recipient).
    assert markers.found_in(before) == set(markers.fields.values())
    assert await own_pool.fetchval(
        "SELECT status FROM tickets WHERE ticket_id = $1", ticket_id
    ) == ("closed")

    erased = await erase_customer(own_pool, customer_id, "operator-1", datetime.now(UTC))
    assert erased.tickets == [ticket_id] and erased.counts.events > 0

    after = await every_column(own_pool)
    assert customer_id not in after
    kept = markers.found_in(after)
    declared = {
        f"{kind.value}.{name}": why
        for kind, model in PAYLOADS.items()
        for name, why in not_personal(model).items()
    }
    assert kept <= set(declared), sorted(kept - set(declared))
    assert all(len(why) > 20 for why in declared.values()), declared
    # The fields of the bug report, and the counts that stay.
    assert "partner_engaged.checkpoints" not in kept and "partner_engaged.problem" not in kept
    assert await own_pool.fetchval(
        "SELECT count(*) FROM ticket_events WHERE ticket_id = $1", ticket_id
    ) == len(events)
    back = await store.events(ticket_id)  # what GET /events reads: still valid models
    assert [e.type for e in back] == list(EventType)
