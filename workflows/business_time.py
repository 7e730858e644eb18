"""Working time on a business calendar: pure arithmetic, to the second.

A calendar is a time zone, working intervals per weekday (several a day), days off
(public holidays), weekend days that are worked (mainland China's 调休 make-up days) and
company closures. `add` finds the instant a promise of N working hours falls due;
`between` measures the working time between two instants (a pause, or how much of a
promise is used). They invert each other: `between(a, add(a, d)) == d`.

An interval is turned into two real instants on each local date, so a day with a DST
jump is as long as it really is, and "00:00-24:00" every day is continuous time (a
24/7 calendar never closes at midnight). A wall time inside a DST gap or repeated hour
takes Python's first reading of it (fold=0).

No I/O, no clock: the workflow calls these with `workflow.now()`, and tests call them
with anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

# One interval of a day, in seconds since local midnight: [start, end), end <= 86,400.
Hours = tuple[int, int]
# An interval of real time, as UTC instants: [start, end).
Span = tuple[datetime, datetime]

DAY = 86_400
# Looking further than this for working time means the calendar has none; a promise
# then falls due as if in calendar time rather than never.
_HORIZON_DAYS = 3_660
_INTERVAL = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


def parse_hours(text: str) -> Hours:
    """`"09:00-12:00"` → (32400, 43200). `24:00` ends a day; empty intervals are refused."""
    found = _INTERVAL.match(text.strip())
    if found is None:
        raise ValueError(f"working hours {text!r}: expected 'HH:MM-HH:MM', e.g. '09:00-12:00'")
    h1, m1, h2, m2 = (int(part) for part in found.groups())
    start, end = h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60
    if m1 > 59 or m2 > 59 or start >= DAY or end > DAY:
        raise ValueError(f"working hours {text!r}: not a time of day (00:00 to 24:00)")
    if end <= start:
        raise ValueError(f"working hours {text!r}: must end after it starts")
    return start, end


def check_day(intervals: list[str]) -> list[str]:
    """A day's intervals: each valid, in order, none overlapping."""
    parsed = [parse_hours(text) for text in intervals]
    for (_, end), (start, _) in pairwise(parsed):
        if start < end:
            raise ValueError(f"working hours {intervals}: intervals must be in order and apart")
    return intervals


@dataclass(frozen=True)
class WorkingCalendar:
    zone: ZoneInfo
    # Monday first, as date.weekday() counts.
    week: tuple[tuple[Hours, ...], ...]
    # Hours of a worked weekend day (调休).
    makeup: tuple[Hours, ...]
    holidays: frozenset[date]
    workdays: frozenset[date]
    closures: tuple[Span, ...] = ()

    def hours_on(self, day: date) -> tuple[Hours, ...]:
        if day in self.workdays:
            return self.makeup
        if day in self.holidays:
            return ()
        return self.week[day.weekday()]

    def spans_on(self, day: date) -> list[Span]:
        """The working time of one local date, as real instants, closures taken out."""
        spans: list[Span] = []
        for start, end in self.hours_on(day):
            span = (self._instant(day, start), self._instant(day, end))
            if span[0] < span[1]:
                spans.extend(_minus(span, self.closures))
        return spans

    def is_working_day(self, day: date) -> bool:
        return bool(self.spans_on(day))

    def local_date(self, instant: datetime) -> date:
        return instant.astimezone(self.zone).date()

    def _instant(self, day: date, seconds: int) -> datetime:
        if seconds >= DAY:
            day, seconds = day + timedelta(days=1), seconds - DAY
        wall = time(seconds // 3600, seconds // 60 % 60, seconds % 60)
        return datetime.combine(day, wall, tzinfo=self.zone).astimezone(UTC)


def _minus(span: Span, closures: tuple[Span, ...]) -> list[Span]:
    pieces = [span]
    for c_start, c_end in closures:
        kept: list[Span] = []
        for start, end in pieces:
            if c_end <= start or end <= c_start:
                kept.append((start, end))
                continue
            if start < c_start:
                kept.append((start, c_start))
            if c_end < end:
                kept.append((c_end, end))
        pieces = kept
    return pieces


def add(calendar: WorkingCalendar, start: datetime, amount: timedelta) -> datetime:
    """The instant `amount` of working time after `start` (inside working time, or at the
    end of an interval; `start` itself when the amount is zero)."""
    if amount <= timedelta(0):
        return start
    left = amount
    day = calendar.local_date(start)
    for _ in range(_HORIZON_DAYS):
        for span_start, span_end in calendar.spans_on(day):
            if span_end <= start:
                continue
            begin = max(span_start, start)
            room = span_end - begin
            if left <= room:
                return begin + left
            left -= room
        day += timedelta(days=1)
    return start + amount


def between(calendar: WorkingCalendar, start: datetime, end: datetime) -> timedelta:
    """How much working time lies in [start, end); zero if end is not after start."""
    total = timedelta(0)
    if end <= start:
        return total
    day, last = calendar.local_date(start), calendar.local_date(end)
    while day <= last:
        for span_start, span_end in calendar.spans_on(day):
            overlap = min(span_end, end) - max(span_start, start)
            if overlap > timedelta(0):
                total += overlap
        day += timedelta(days=1)
    return total


def is_working(calendar: WorkingCalendar, instant: datetime) -> bool:
    """Inside working time: within an interval, or at its closing instant."""
    day = calendar.local_date(instant)
    return any(
        start <= instant <= end
        for offset in (-1, 0)
        for start, end in calendar.spans_on(day + timedelta(days=offset))
    )


def next_working_day_at(calendar: WorkingCalendar, after: datetime, at: time) -> datetime:
    """The first `at` (wall clock) on a working day strictly after `after`: the daily
    10:00 check skips weekends, holidays and closures, and keeps 调休 Sundays."""
    day = calendar.local_date(after)
    for _ in range(_HORIZON_DAYS):
        if calendar.is_working_day(day):
            candidate = datetime.combine(day, at, tzinfo=calendar.zone).astimezone(UTC)
            if candidate > after:
                return candidate
        day += timedelta(days=1)
    return after + timedelta(days=1)


def next_day_at(zone: ZoneInfo, after: datetime, at: time) -> datetime:
    """The first `at` (wall clock in `zone`) strictly after `after`, every day."""
    day = after.astimezone(zone).date()
    candidate = datetime.combine(day, at, tzinfo=zone).astimezone(UTC)
    if candidate <= after:
        candidate = datetime.combine(day + timedelta(days=1), at, tzinfo=zone).astimezone(UTC)
    return candidate
