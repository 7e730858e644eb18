"""Issue 19 item 11: every duration and count of the policy has bounds, refused at load
with the field named, and any policy that loads gives a ticket a bounded number of
events per simulated (policy-time) day.

What the property test proves, and what it does not: for every policy that loads, the
events a ticket's own timers can record in a day of policy time, counted the way the
ticket arms its timers (`timer_events_per_day`: `scaled(period)` between two firings of
a repeating timer, `next_daily_check` for the 10:00 check), stay under one ceiling set by
the bounds alone. Events people cause (replies, actions) come on top and are theirs to
bound. The workflow test below runs a real ticket under the tightest policy that loads
and checks that it records no more in a day than `timer_events_per_day` says.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tests.workflows.conftest import AGENT, TECH, DeskFactory
from workers.settings import ConfigurationError, load_settings
from workflows.bounds import Bounds, out_of_bounds
from workflows.contracts import Dispatch, EngagePartner, PostProgress
from workflows.policy import (
    DAY,
    MOST_STEPS,
    SHORTEST_PARTNER_UPDATE,
    SHORTEST_REVIEW,
    EscalationStep,
    ServicePolicy,
    SlaTarget,
    SlaWarning,
    next_daily_check,
    scaled,
    timer_events_per_day,
)
from workflows.vocabulary import Channel, Priority

# What the bounds alone allow: first response, breach and auto-close once each, every
# warning and escalation step, two 10:00 checks (a DST day), reviews and one partner's
# updates at their shortest periods.
CEILING = 3 + 2 * MOST_STEPS + 2 + DAY // SHORTEST_REVIEW + 1 + DAY // SHORTEST_PARTNER_UPDATE + 1


@pytest.fixture(autouse=True, scope="module")
def clean_environment() -> Iterator[None]:
    # A developer's own TICKETFLOW_* must not change what loads.
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("TICKETFLOW_"):
                patch.delenv(name)
        yield


def bounded_fields(
    model: type[BaseModel], prefix: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], Any, Bounds]]:
    """Every field of the policy (nested models included) that declares Bounds."""
    found = []
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        for bounds in (m for m in field.metadata if isinstance(m, Bounds)):
            found.append((path, field.annotation, bounds))
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += bounded_fields(annotation, path)
    return found


FIELDS = [
    *bounded_fields(ServicePolicy),
    # The SLA targets are a mapping: each priority's `within`.
    *(
        (("sla", priority.value, "within"), timedelta, bounds)
        for priority in Priority
        for bounds in SlaTarget.model_fields["within"].metadata
        if isinstance(bounds, Bounds)
    ),
]


def test_every_duration_and_count_of_the_policy_is_bounded() -> None:
    """A duration or count added to the policy without bounds fails here."""
    named = {".".join(path) for path, _, _ in FIELDS}
    unbounded = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, f"{prefix}{name}.")
            elif annotation in (timedelta, int) and f"{prefix}{name}" not in named:
                unbounded.append(f"{prefix}{name}")

    walk(ServicePolicy, "")
    # Bounded by pydantic itself since they were added (decoded tickets keep them).
    by_pydantic = {
        "surge.sample",
        "review.sample_size",
        "review.min_whys",
        "review.low_csat",
        "review.detractor_nps",
        "review.top_root_causes",
        "review.follow_ups_per_analysis",
        "review.remind_before",
        "review.grace",
    }
    assert sorted(set(unbounded) - by_pydantic) == []


def _drawn(annotation: Any, bounds: Bounds, outside: bool) -> st.SearchStrategy[Any]:
    """A value within the bounds (the bounds themselves included), or one just outside
    them, zero or negative."""
    if annotation is timedelta:
        low = bounds.low if isinstance(bounds.low, timedelta) else timedelta(0)
        high = bounds.high if isinstance(bounds.high, timedelta) else timedelta(days=4000)
        if outside:
            beyond = [low - timedelta(seconds=1), high + timedelta(seconds=1), timedelta(-1)]
            return st.sampled_from([*beyond, *([timedelta(0)] if low > timedelta(0) else [])])
        seconds = st.integers(int(low.total_seconds()), int(high.total_seconds()))
        return st.one_of(st.sampled_from([low, high]), seconds.map(lambda s: timedelta(seconds=s)))
    low_n = float(bounds.low if bounds.low is not None else 0)  # type: ignore[arg-type]
    high_n = float(bounds.high if bounds.high is not None else 100_000)  # type: ignore[arg-type]
    if annotation is float:
        if outside:
            return st.sampled_from([low_n - 0.001, high_n + 0.5, -1.0])
        return st.floats(low_n, high_n, allow_nan=False)
    if outside:
        return st.sampled_from([int(low_n) - 1, int(high_n) + 1])
    return st.integers(int(low_n), int(high_n))


def _list_of(length: int, path: tuple[str, ...]) -> list[Any]:
    if path == ("sla_warnings",):
        return [SlaWarning(at=(i + 1) / (length + 1), notify="supervisor") for i in range(length)]
    return [EscalationStep(after=timedelta(hours=i), to="service_lead") for i in range(length)]


@st.composite
def policy_overrides(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A policy file's worth of overrides, and the fields drawn out of their bounds."""
    overrides: dict[str, Any] = {}
    outside: list[str] = []
    # Most fields within their bounds, at most two outside: policies that load and
    # policies that fail to load by one or two fields.
    names = [".".join(path) for path, _, _ in FIELDS]
    broken = draw(st.sets(st.sampled_from(names), max_size=2) | st.just(set()))
    for path, annotation, bounds in FIELDS:
        if ".".join(path) in broken:
            how = "outside"
        else:
            how = draw(st.sampled_from(["default", "inside"]))
        if how == "default":
            continue
        if getattr(annotation, "__origin__", None) is list:
            low, high = int(bounds.low or 0), int(bounds.high or 0)  # type: ignore[arg-type]
            length = draw(
                st.integers(high + 1, high + 3) if how == "outside" else st.integers(low, high)
            )
            value: Any = [item.model_dump(mode="json") for item in _list_of(length, path)]
            measured: Any = length
        else:
            value = measured = draw(_drawn(annotation, bounds, how == "outside"))
        low_ok = bounds.low is None or measured >= bounds.low
        high_ok = bounds.high is None or measured <= bounds.high
        if not (low_ok and high_ok):
            outside.append(".".join(path))
        target = overrides
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    overrides["time_scale"] = draw(st.sampled_from([1, 60, 3600, 86_400, 1_000_000]))
    overrides["time_zone"] = draw(st.sampled_from(["Asia/Shanghai", "America/New_York"]))
    return overrides, outside


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=policy_overrides(), start=st.integers(0, 365 * 86_400))
def test_a_policy_that_loads_gives_a_ticket_a_bounded_number_of_events_a_day(
    drawn: tuple[dict[str, Any], list[str]], start: int
) -> None:
    overrides, outside = drawn
    try:
        policy = load_settings(policy=overrides).policy
    except ConfigurationError as error:
        # Refused at load, naming only fields drawn out of bounds; all of them, unless
        # pydantic's own constraints (which the Bounds repeat) refused the policy first.
        named = set(re.findall(r"policy\.([\w.]+):", str(error)))
        assert named and named <= set(outside), str(error)
        if "Input should" not in str(error):
            assert named == set(outside), str(error)
        event("refused")
        return
    event("loaded")
    assert outside == [], f"loaded with {outside} out of bounds"
    assert out_of_bounds(policy) == []
    assert timer_events_per_day(policy, partners=1) <= CEILING

    # The 10:00 check, stepped as the ticket steps it over one scaled day, from any
    # instant: at most two (a day that loses an hour to DST).
    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    now = anchor + timedelta(seconds=start) / policy.time_scale
    end, checks = now + scaled(policy, DAY), 0
    while (now := next_daily_check(policy, anchor, now, Priority.B)) < end:
        checks += 1
    assert checks <= 2


async def test_the_tightest_policy_that_loads_keeps_a_ticket_to_its_daily_bound(
    desk_factory: DeskFactory,
) -> None:
    """Reviews and partner updates at their shortest periods, a work order's daily
    check, and nobody acting: a simulated day holds no more events than the bound, and
    the reviews come hourly, not in a loop."""
    policy = load_settings(
        policy={
            "upgrade_review_after": SHORTEST_REVIEW,
            "partner_update_every": SHORTEST_PARTNER_UPDATE,
            "review_checkpoint_max": SHORTEST_REVIEW,
        }
    ).policy
    desk = await desk_factory(policy=policy)
    tid = (await desk.open("退款一直没到账", channel=Channel.EMAIL)).ticket_id
    await desk.tickets.act(tid, Dispatch(actor=AGENT, departments=["tech"], note="查退款"))
    await desk.tickets.act(tid, PostProgress(actor=TECH, department="tech", note="查询中"))
    expected_by = await desk.env.get_current_time() + timedelta(days=5)
    await desk.tickets.act(
        tid, EngagePartner(actor=AGENT, partner="unionpay", problem="退款", expected_by=expected_by)
    )
    await desk.settled(tid)
    day_one = await desk.env.get_current_time()
    await desk.skip(2 * DAY, tid)

    rows = await desk.pool.fetch(
        "SELECT type, occurred_at FROM ticket_events WHERE ticket_id = $1 AND occurred_at >= $2"
        " AND occurred_at < $3",
        tid,
        day_one + DAY,
        day_one + 2 * DAY,
    )
    kinds = [row["type"] for row in rows]
    assert len(kinds) <= timer_events_per_day(policy, partners=1) <= CEILING
    # Hourly: 24 a day (25 where a day's window catches both ends), never more.
    assert 23 <= kinds.count("upgrade_review_convened") <= DAY // SHORTEST_REVIEW + 1
    assert 23 <= kinds.count("partner_update_sent") <= DAY // SHORTEST_PARTNER_UPDATE + 1
