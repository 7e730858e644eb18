"""Business time, checked against a reference that counts minute by minute.

The reference reads each minute's local wall time and asks the calendar's rules directly
(weekday intervals, holidays, make-up days), with none of `business_time`'s spans, so
the two agree only if both get zones, DST days and midnight right.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from activities.calendars import with_public_holidays
from workflows import business_time as bt
from workflows.policy import (
    BusinessCalendar,
    Clock,
    Closure,
    PromiseClocks,
    ServicePolicy,
    Weekday,
    clock_add,
    next_daily_check,
    working_calendar,
)
from workflows.sla_clock import Pause, SlaClock, paused_time, sla_clock_due
from workflows.vocabulary import Priority

SHANGHAI = ZoneInfo("Asia/Shanghai")
ZONES = ["Asia/Shanghai", "America/New_York", "Europe/London", "Australia/Sydney", "UTC"]
MINUTE = timedelta(minutes=1)

# Interval ends on quarter hours, none strictly between 00:00 and 04:00: a boundary
# inside a DST gap or repeated hour has no single reading (the module takes fold=0), so
# the reference is asked only where the answer is unambiguous. Intervals still span DST
# jumps (00:00-24:00, 00:00-06:00), which is where calendars go wrong.
_ENDS = [0, *range(16, 97)]  # quarter hours: 0 and 04:00 .. 24:00


def _text(quarter: int) -> str:
    return f"{quarter // 4:02d}:{quarter % 4 * 15:02d}"


@st.composite
def day_hours(draw: st.DrawFn) -> list[str]:
    # Midnight and 24:00 often: days that join their neighbours are where DST bites.
    ends = st.one_of(st.just(0), st.just(96), st.sampled_from(_ENDS))
    cuts = sorted(set(draw(st.lists(ends, max_size=6))))
    pairs = list(zip(cuts[::2], cuts[1::2], strict=False))
    return [f"{_text(a)}-{_text(b)}" for a, b in pairs if b > a]


@st.composite
def calendars(draw: st.DrawFn) -> tuple[BusinessCalendar, str]:
    zone = draw(st.sampled_from(ZONES))
    week = {day: draw(day_hours()) for day in Weekday}
    if not any(week.values()):
        week[Weekday.MON] = ["09:00-17:00"]
    base = date(2026, 3, 1)
    days = st.integers(min_value=0, max_value=300).map(lambda n: base + timedelta(days=n))
    calendar = BusinessCalendar(
        time_zone=zone,
        week=week,
        makeup_day=draw(day_hours()) or ["09:00-18:00"],
        public_holidays=None,
        holidays=draw(st.lists(days, max_size=20)),
        workdays=draw(st.lists(days, max_size=5)),
    )
    return calendar, zone


# Half the instants fall within two days of a DST change of one of the zones, where a
# calendar that assumes 24-hour days would go wrong.
_DST_CHANGES = [date(2026, 3, 8), date(2026, 3, 29), date(2026, 4, 5), date(2026, 10, 4)]
_DST_CHANGES += [date(2026, 10, 25), date(2026, 11, 1)]
instants = st.one_of(
    st.integers(min_value=0, max_value=290 * 24 * 4).map(
        lambda quarters: datetime(2026, 3, 2, tzinfo=UTC) + timedelta(minutes=15 * quarters)
    ),
    st.tuples(st.sampled_from(_DST_CHANGES), st.integers(min_value=-48 * 4, max_value=24 * 4)).map(
        lambda pair: (
            datetime.combine(pair[0], time(0), tzinfo=UTC) + timedelta(minutes=15 * pair[1])
        )
    ),
)


def reference_working(calendar: BusinessCalendar, zone: ZoneInfo, minute: datetime) -> bool:
    local = minute.astimezone(zone)
    day = local.date()
    if day in calendar.workdays:
        hours = calendar.makeup_day
    elif day in calendar.holidays:
        hours = []
    else:
        hours = calendar.week.get(list(Weekday)[day.weekday()], [])
    seconds = local.hour * 3600 + local.minute * 60
    return any(start <= seconds < end for start, end in map(bt.parse_hours, hours))


def reference_between(calendar: BusinessCalendar, start: datetime, end: datetime) -> timedelta:
    zone = ZoneInfo(calendar.time_zone or "UTC")
    total, minute = timedelta(0), start
    while minute < end:
        if reference_working(calendar, zone, minute):
            total += MINUTE
        minute += MINUTE
    return total


def _policy(calendar: BusinessCalendar, **fields: object) -> ServicePolicy:
    return ServicePolicy(business_hours=calendar, **fields)


@settings(max_examples=200, deadline=None)
@given(calendars(), instants, st.integers(min_value=0, max_value=3 * 24 * 4))
def test_between_agrees_with_a_minute_by_minute_reference(
    drawn: tuple[BusinessCalendar, str], start: datetime, quarters: int
) -> None:
    calendar, _ = drawn
    end = start + timedelta(minutes=15 * quarters)
    assert bt.between(working_calendar(_policy(calendar)), start, end) == reference_between(
        calendar, start, end
    )


@settings(max_examples=150, deadline=None)
@given(calendars(), instants, st.integers(min_value=1, max_value=200 * 3600))
def test_adding_and_measuring_invert_each_other_and_land_in_working_time(
    drawn: tuple[BusinessCalendar, str], start: datetime, seconds: int
) -> None:
    working = working_calendar(_policy(drawn[0]))
    amount = timedelta(seconds=seconds)
    due = bt.add(working, start, amount)
    assert bt.between(working, start, due) == amount
    assert bt.is_working(working, due)
    # Nothing earlier would do: one second less of work ends before the due instant.
    assert bt.add(working, start, amount - timedelta(seconds=1)) < due


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(ZONES), instants, st.integers(min_value=0, max_value=400 * 3600))
def test_a_24_7_calendar_is_calendar_time_even_across_midnight_and_dst(
    zone: str, start: datetime, seconds: int
) -> None:
    always = BusinessCalendar.always_open().model_copy(update={"time_zone": zone})
    working = working_calendar(_policy(always))
    amount = timedelta(seconds=seconds)
    assert bt.add(working, start, amount) == start + amount
    assert bt.between(working, start, start + amount) == amount


def test_a_dst_day_is_as_long_as_it_really_is() -> None:
    always = BusinessCalendar.always_open().model_copy(update={"time_zone": "America/New_York"})
    working = working_calendar(_policy(always))
    # 2026-03-08: clocks go forward (23 h); 2026-11-01: back (25 h).
    spring = datetime(2026, 3, 8, tzinfo=ZoneInfo("America/New_York"))
    autumn = datetime(2026, 11, 1, tzinfo=ZoneInfo("America/New_York"))
    assert sum((e - s for s, e in working.spans_on(spring.date())), timedelta(0)) == timedelta(
        hours=23
    )
    assert sum((e - s for s, e in working.spans_on(autumn.date())), timedelta(0)) == timedelta(
        hours=25
    )


def _shanghai(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def test_mainland_china_holidays_and_make_up_days_come_from_the_holidays_library() -> None:
    policy = with_public_holidays(ServicePolicy(), date(2026, 6, 1))
    calendar = policy.business_hours
    assert date(2026, 10, 1) in calendar.holidays  # National Day
    assert date(2026, 9, 20) in calendar.workdays  # a Sunday worked for it (调休)
    working = working_calendar(policy)
    assert not working.is_working_day(date(2026, 10, 5))
    assert working.is_working_day(date(2026, 9, 20))
    # Friday 17:00 + 24 working hours (7.5 h a day): 1 h Friday, 7.5 the make-up Sunday,
    # 7.5 Monday, 7.5 Tuesday, and the last half hour on Wednesday morning.
    due = bt.add(working, _shanghai(2026, 9, 18, 17, 0), timedelta(hours=24))
    assert due == _shanghai(2026, 9, 23, 9, 30)


def test_lunch_breaks_closures_and_unknown_countries() -> None:
    calendar = BusinessCalendar(
        public_holidays=None,
        closures=[Closure(start=datetime(2026, 12, 2, 14, 0), end=datetime(2026, 12, 3, 0, 0))],
    )
    working = working_calendar(_policy(calendar))
    # Tuesday 11:00 + 2 h: one hour before lunch, the second after it.
    assert bt.add(working, _shanghai(2026, 12, 1, 11, 0), timedelta(hours=2)) == _shanghai(
        2026, 12, 1, 14, 30
    )
    # Wednesday closes at 14:00 for the afternoon: 13:30-14:00 is all it has after lunch.
    assert bt.between(
        working, _shanghai(2026, 12, 2, 0, 0), _shanghai(2026, 12, 3, 0, 0)
    ) == timedelta(hours=3, minutes=30)
    with pytest.raises(ValueError, match="no such country"):
        with_public_holidays(
            ServicePolicy(business_hours=BusinessCalendar(public_holidays="XX")), date(2026, 1, 1)
        )


@pytest.mark.parametrize(
    ("week", "message"),
    [
        ({"mon": ["9:00-12:00"]}, "expected 'HH:MM-HH:MM'"),
        ({"mon": ["12:00-09:00"]}, "must end after it starts"),
        ({"mon": ["09:00-12:00", "11:00-13:00"]}, "in order and apart"),
        ({"mon": ["09:00-24:30"]}, "not a time of day"),
        ({}, "at least one weekday"),
    ],
)
def test_a_calendar_that_cannot_be_meant_is_refused(
    week: dict[str, list[str]], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        BusinessCalendar.model_validate({"week": week})


def test_a_scaled_daily_check_keeps_one_check_per_scaled_day() -> None:
    policy = ServicePolicy(time_scale=3600)  # a policy day is 24 s
    opened = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    checks, now = [], opened
    for _ in range(5):
        now = next_daily_check(policy, opened, now, Priority.B)
        checks.append(now)
    gaps = {b - a for a, b in pairwise(checks)}
    assert gaps == {timedelta(seconds=24)}
    # 03:00 UTC is 11:00 in Shanghai: the first 10:00 is 23 policy hours away.
    assert checks[0] - opened == timedelta(seconds=23)


def test_the_daily_check_on_the_business_clock_skips_days_off() -> None:
    clocks = {p: PromiseClocks(progress_check=Clock.BUSINESS) for p in Priority}
    policy = ServicePolicy(
        clocks=clocks, business_hours=BusinessCalendar(public_holidays=None, workdays=[])
    )
    friday_noon = _shanghai(2026, 12, 4, 12, 0)
    assert next_daily_check(policy, friday_noon, friday_noon, Priority.C) == _shanghai(
        2026, 12, 7, 10, 0
    )


def test_paused_time_counts_on_the_clock_and_only_after_a_rebase() -> None:
    policy = ServicePolicy(business_hours=BusinessCalendar(public_holidays=None))
    start = _shanghai(2026, 12, 4, 17, 0)  # Friday
    # Paused over the weekend: 1 working hour of it on Friday, 1 on Monday morning.
    pause = Pause(start=start, end=_shanghai(2026, 12, 7, 10, 0), reason="waiting_on_customer")
    sla = SlaClock(
        counts_from=start, within=timedelta(hours=4), clock=Clock.BUSINESS, pauses=[pause]
    )
    assert paused_time(policy, start, sla, start) == timedelta(hours=2)
    # Due after 4 working hours plus the 2 paused: Monday 09:00 + 5 h (with lunch) = 15:30.
    assert sla_clock_due(policy, start, sla, start) == _shanghai(2026, 12, 7, 15, 30)
    # Counted from Monday 09:30 instead: only the half hour paused after it counts.
    rebased = sla.model_copy(update={"counts_from": _shanghai(2026, 12, 7, 9, 30)})
    assert paused_time(policy, start, rebased, start) == timedelta(minutes=30)
    assert clock_add(policy, Clock.CALENDAR, start, start, timedelta(hours=1)) == start + timedelta(
        hours=1
    )
    still_paused = sla.model_copy(update={"pauses": [Pause(start=start, reason="x")]})
    assert sla_clock_due(policy, start, still_paused, start) is None


def test_a_scaled_ticket_open_for_years_keeps_finding_its_next_check() -> None:
    policy = ServicePolicy(time_scale=86_400)  # a day a second
    opened = datetime(2026, 12, 1, tzinfo=UTC)
    # 40 days at a day a second is 9,400 policy years: held at a limit, never an error.
    later = opened + timedelta(days=40)
    assert next_daily_check(policy, opened, later, Priority.B) > later
