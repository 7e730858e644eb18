"""Typed where strings and dicts stood: what a hand-off carries (`HandoffData`), the kind
of a failed delivery (`OutboxKind`), a review's failed reminders (`FailedReminder`).
Every shape already recorded (saved histories, outbox rows, stored review states) still
reads, and is written back exactly as it was."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message
from pydantic import ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory

from tests.codec_keys import CONVERTER
from workflows.contracts import (
    DeliveryFailure,
    Handoff,
    HandoffData,
    HandoffKind,
    MessageKind,
)
from workflows.delivery_failures import alert_facts, alerts_supervisors
from workflows.primitives import ContextSnapshot, rule_for
from workflows.review_contracts import FailedReminder, ReviewState

HISTORIES = Path(__file__).parent / "histories"


def _payloads(message: Message) -> Iterator[Payload]:
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            values = list(value.values())
        elif isinstance(value, Message):
            values = [value]
        else:
            values = list(value)
        for item in values:
            if isinstance(item, Payload):
                yield item
            elif isinstance(item, Message):
                yield from _payloads(item)


def _objects(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _objects(item)
    elif isinstance(value, list):
        for item in value:
            yield from _objects(item)


async def recorded_objects() -> list[dict[str, Any]]:
    """Every JSON object inside every payload of every saved history, as recorded."""
    codec = CONVERTER.payload_codec
    assert codec is not None
    found: list[dict[str, Any]] = []
    for path in sorted(HISTORIES.rglob("*.json")):
        history = WorkflowHistory.from_json(path.stem, path.read_text())
        for event in history.events:
            for payload in await codec.decode(list(_payloads(event))):
                try:
                    found += _objects(json.loads(payload.data))
                except ValueError:
                    continue  # not JSON (a binary/null payload)
    return found


# ---------------------------------------------------------------- hand-off data


async def test_recorded_hand_offs_read_their_data_typed_and_write_it_back_unchanged() -> None:
    handoffs = [o for o in await recorded_objects() if {"dedupe_key", "recipients"} <= set(o)]
    kinds = {h["kind"] for h in handoffs if h.get("data")}
    assert {"work_order", "partner_contact", "emergency_group", "review_reminder"} <= kinds
    for recorded in handoffs:
        handoff = Handoff.model_validate(recorded)
        assert handoff.model_dump(mode="json")["data"] == recorded.get("data", {})
        if recorded["kind"] == "partner_contact":
            assert isinstance(handoff.data.checkpoints, list)
            assert isinstance(handoff.data.snapshot, ContextSnapshot)
        if recorded["kind"] == "review_reminder":
            assert isinstance(handoff.data.follow_up, int)
        if recorded["kind"] == "delivery_failed" and handoff.facts is not None:
            assert isinstance(handoff.facts.failed_kind, HandoffKind | MessageKind)
            assert handoff.facts.failed_kind == recorded["facts"]["failed_kind"]


def test_hand_off_data_is_written_with_the_keys_it_was_given() -> None:
    assert HandoffData().model_dump(mode="json") == {}
    assert HandoffData(checkpoints=[]).model_dump(mode="json") == {"checkpoints": []}
    assert HandoffData(follow_up=2, ticket_id="T-1").model_dump(mode="json") == {
        "follow_up": 2,
        "ticket_id": "T-1",
    }


def test_the_customers_ip_never_goes_with_a_snapshot() -> None:
    context = ContextSnapshot(ip="203.0.113.9", device_model="iPhone 15", affected_users=3)
    written = HandoffData(snapshot=context, description="d").model_dump(mode="json")
    assert "ip" not in written["snapshot"]
    assert written["snapshot"]["device_model"] == "iPhone 15"
    assert json.loads(HandoffData(snapshot=context).model_dump_json())["snapshot"].get("ip") is None


# ---------------------------------------------------------------- failed deliveries


def _failure(kind: str) -> DeliveryFailure:
    return DeliveryFailure(dedupe_key="k", kind=kind, destination="d", attempts=3, error="e")


@pytest.mark.parametrize("kind", [*HandoffKind, *MessageKind])
def test_a_failed_delivery_names_its_kind_typed(kind: HandoffKind | MessageKind) -> None:
    failure = _failure(kind.value)
    assert failure.kind is kind
    assert failure.model_dump(mode="json")["kind"] == kind.value
    assert alert_facts(failure).failed_kind is kind
    assert alerts_supervisors(failure) is (kind is not HandoffKind.DELIVERY_FAILED)


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValidationError):
        _failure("carrier_pigeon")


async def test_recorded_failures_parse() -> None:
    recorded = [
        o for o in await recorded_objects() if {"dedupe_key", "destination", "attempts"} <= set(o)
    ]
    assert recorded
    for failure in recorded:
        assert DeliveryFailure.model_validate(failure).model_dump(mode="json") == failure


# ---------------------------------------------------------------- a review's failures


LINE = "review-2026-W48:3:review_reminder:4:agent:ops-9 review_reminder to queue://agents/ops-9: HTTP 410 from agents.example"


def test_a_stored_failure_line_reads_into_its_fields_and_back() -> None:
    failure = FailedReminder.model_validate(LINE)
    assert failure.dedupe_key == "review-2026-W48:3:review_reminder:4:agent:ops-9"
    assert failure.said == "review_reminder to queue://agents/ops-9: HTTP 410 from agents.example"
    assert failure.line() == LINE
    state = ReviewState.model_validate(
        {
            "review_id": "review-2026-W48",
            "week": "2026-W48",
            "period_start": datetime(2026, 11, 23, tzinfo=UTC),
            "period_end": datetime(2026, 11, 30, tzinfo=UTC),
            "started_at": datetime(2026, 11, 30, tzinfo=UTC),
            "delivery_failures": [LINE],
        }
    )
    assert state.delivery_failures == [failure]
    assert state.model_dump(mode="json")["delivery_failures"] == [LINE]
    assert ReviewState.model_validate_json(state.model_dump_json()) == state


# ---------------------------------------------------------------- rules


def test_a_rule_reads_only_the_action_class_it_is_for() -> None:
    kind, rule = rule_for(int, lambda state, policy, action, now: f"{action + 1}")
    assert kind is int
    assert rule(None, None, 41, datetime.now(UTC)) == "42"
    with pytest.raises(AssertionError):
        rule(None, None, "41", datetime.now(UTC))
