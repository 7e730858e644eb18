"""Service-health indicators against numbers worked out by hand (not the same SQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from activities.database import Pool
from activities.event_store import EventStore
from activities.indicators import GroupBy, service_health
from tests.activities.factories import AGENT, CUSTOMER, T0, batch, event
from tests.conftest import schema_of_its_own
from workflows.events import EventType
from workflows.policy import ServicePolicy
from workflows.primitives import SYSTEM

DAY = timedelta(days=1)


@pytest.fixture(scope="module")
async def seeded(database_url: str) -> AsyncIterator[Pool]:
    """Four tickets in a schema of their own (their numbers are the only ones there)."""
    async with schema_of_its_own(database_url, "indicators") as pool:
        await _seed(EventStore(pool))
        yield pool


async def _seed(store: EventStore) -> None:

    async def ticket(
        tid: str, channel: str, steps: list[tuple[EventType, dict[str, Any], Any]]
    ) -> None:
        opened = (EventType.TICKET_OPENED, {"channel": channel}, CUSTOMER)
        events = [
            event(tid, seq, kind, data, at=T0 + timedelta(minutes=seq), actor=actor)
            for seq, (kind, data, actor) in enumerate([opened, *steps], start=1)
        ]
        await store.append_events(batch(events))

    solved = [
        (EventType.CUSTOMER_REPLIED, {"kind": "solved"}, CUSTOMER),
        (EventType.CLOSED, {"reason": "customer_confirmed"}, CUSTOMER),
    ]
    # A: live, answered in 20 s, resolved at first contact, rated 5 and 10.
    await ticket(
        "T-A",
        "app_chat",
        [
            (EventType.FIRST_RESPONDED, {"seconds": 20.0, "within_target": True}, AGENT),
            (EventType.RESOLVED, {}, AGENT),
            (EventType.CSAT_RECORDED, {"score": 5}, CUSTOMER),
            (EventType.NPS_RECORDED, {"score": 10}, CUSTOMER),
            *solved,
        ],
    )
    # B: live, nobody answered before the target: not within target.
    await ticket("T-B", "web_chat", [(EventType.FIRST_RESPONSE_BREACHED, {}, SYSTEM)])
    # C: e-mail, answered in an hour, sent to tech (answered in 10 min), resolved,
    # reopened, resolved again, rated 2 and 6.
    await ticket(
        "T-C",
        "email",
        [
            (EventType.FIRST_RESPONDED, {"seconds": 3600.0, "within_target": True}, AGENT),
            (EventType.DISPATCHED, {"departments": ["tech"], "transfers": 1}, AGENT),
            (EventType.PROGRESS_POSTED, {"department": "tech", "response_seconds": 600.0}, AGENT),
            (EventType.RESOLVED, {}, AGENT),
            (EventType.REOPENED, {"count": 1}, CUSTOMER),
            (EventType.RESOLVED, {}, AGENT),
            (EventType.CSAT_RECORDED, {"score": 2}, CUSTOMER),
            (EventType.NPS_RECORDED, {"score": 6}, CUSTOMER),
        ],
    )
    # D: e-mail, answered after 25 h (late), SLA breached, still open.
    await ticket(
        "T-D",
        "email",
        [
            (EventType.FIRST_RESPONDED, {"seconds": 90000.0, "within_target": False}, AGENT),
            (EventType.SLA_BREACHED, {}, SYSTEM),
        ],
    )


async def test_the_weeks_indicators_as_worked_out_by_hand(seeded: Pool) -> None:
    health = await service_health(seeded, ServicePolicy(), T0, T0 + 7 * DAY)
    [week] = health.groups
    assert week.opened == 4
    first = week.first_response
    # Live: A answered in 20 s; B never: 1 of 2 within target.
    assert (first.live.n, first.live.median_seconds) == (1, 20.0)
    assert (first.live_within_target.n, first.live_within_target.part) == (2, 1)
    # Async: C in 3,600 s, D in 90,000 s: median 46,800; p90 3,600 + 0.9 x 86,400.
    assert (first.async_.n, first.async_.median_seconds) == (2, 46800.0)
    assert first.async_.p90_seconds == pytest.approx(81360.0)
    assert first.async_within_target.percent == 50.0
    # Opened this week and resolved: A and C; at first contact: A only.
    assert (week.resolved.part, week.resolved.percent) == (2, 50.0)
    assert (week.first_contact_resolution.part, week.first_contact_resolution.percent) == (1, 25.0)
    # Resolved this week: A and C; C went to tech once and was reopened once.
    assert (week.transferred.n, week.transferred.part) == (2, 1)
    assert week.mean_transfers == 0.5
    assert (week.reopened.n, week.reopened.part) == (2, 1)
    # CSAT 5 and 2: one satisfied of two. NPS 10 and 6: 50 % - 50 % = 0.
    assert (week.csat_satisfied.n, week.csat_satisfied.percent) == (2, 50.0)
    assert (week.nps, week.nps_score) == (2, 0.0)
    # Every SLA (B: 24 h) fell due this week; D breached it.
    assert [(s.priority, s.met.n, s.met.part) for s in health.sla] == [("B", 4, 3)]
    # Open at the week's end: B, C (resolved, not yet confirmed) and D, each opened a
    # few minutes after the week began.
    assert sum(b.n for b in health.backlog) == 3
    assert {b.age_band for b in health.backlog} == {"3d-7d"}
    [tech] = health.collaborators
    assert (tech.kind, tech.name, tech.response.n, tech.response.median_seconds) == (
        "department",
        "tech",
        1,
        600.0,
    )


async def test_grouped_by_channel(seeded: Pool) -> None:
    health = await service_health(seeded, ServicePolicy(), T0, T0 + 7 * DAY, GroupBy.CHANNEL)
    by = {g.key: g for g in health.groups}
    assert {k: g.opened for k, g in by.items()} == {"app_chat": 1, "email": 2, "web_chat": 1}
    assert by["email"].first_response.async_within_target.percent == 50.0
    assert by["app_chat"].csat_satisfied.percent == 100.0
    assert by["email"].nps_score == -100.0


async def test_an_empty_period_says_nothing_and_counts_zero(seeded: Pool) -> None:
    health = await service_health(seeded, ServicePolicy(), T0 - 7 * DAY, T0)
    assert health.groups == []
    assert health.sla == []
    assert health.backlog == []


async def test_grouped_by_department(seeded: Pool) -> None:
    health = await service_health(seeded, ServicePolicy(), T0, T0 + 7 * DAY, GroupBy.DEPARTMENT)
    by = {g.key: g for g in health.groups}
    # Only C went to a department (tech); A, B and D went to none.
    assert {k: g.opened for k, g in by.items()} == {None: 3, "tech": 1}
    assert by["tech"].reopened.percent == 100.0
    assert by["tech"].csat_satisfied.percent == 0.0
