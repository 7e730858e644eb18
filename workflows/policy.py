"""ServicePolicy: every number of the service promise, and the pure rules that read it.

Defaults are SPEC.md's. Operators override them by environment or file through
`workers.settings.Settings`; the workflow receives the policy in its input, so a ticket
keeps the promise it was opened under even if the policy changes later.

This module is imported into workflows through `imports_passed_through()`: zoneinfo
does not work inside the sandbox, and these are pure functions of their arguments.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workflows import business_time, language
from workflows.bounds import Bounds
from workflows.vocabulary import Category, Channel, Milestone, Priority, Tier, Topic

# Most urgent first: a move to a smaller rank raises the priority.
PRIORITY_RANK: dict[Priority, int] = {Priority.E: 0, Priority.A: 1, Priority.B: 2, Priority.C: 3}
# A hand-off recipient that is one agent, not a department: `agent:<id>`.
AGENT_PREFIX = "agent:"

# Bounds a process checks when it loads a policy (workflows.bounds, in policy time: a
# time scale compresses them like every other duration). A promise made once must be
# in the future; a period that repeats (reviews, partner updates) is long enough that a
# ticket's timers stay few a day, whatever the policy (timer_events_per_day).
SECOND, MINUTE, HOUR, DAY = (
    timedelta(seconds=1),
    timedelta(minutes=1),
    timedelta(hours=1),
    timedelta(days=1),
)
_LONGEST = timedelta(days=3650)
PROMISE = Bounds(low=SECOND, high=_LONGEST)
SHORTEST_REVIEW = HOUR
SHORTEST_PARTNER_UPDATE = HOUR
# More steps than this is a list nobody meant, and one event each.
MOST_STEPS = 10
HISTORY_EVENTS = Bounds(low=200, high=10_000)  # the server warns at 10,240


class SlaTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    within: Annotated[timedelta, PROMISE]
    met_by: Milestone
    promise: str


def _default_sla() -> dict[Priority, SlaTarget]:
    return {
        Priority.E: SlaTarget(
            within=timedelta(minutes=30),
            met_by=Milestone.TEMPORARY_FIX,
            promise="temporary solution within 30 minutes",
        ),
        Priority.A: SlaTarget(
            within=timedelta(hours=4),
            met_by=Milestone.CAUSE_LOCATED,
            promise="cause located within 4 hours",
        ),
        Priority.B: SlaTarget(
            within=timedelta(hours=24),
            met_by=Milestone.RESOLVED,
            promise="resolved within 24 hours",
        ),
        Priority.C: SlaTarget(
            within=timedelta(hours=72),
            met_by=Milestone.DIRECTION_GIVEN,
            promise="direction of handling within 72 hours",
        ),
    }


class DeliveryRetry(BaseModel):
    """How hard a message is tried before it is reported as failed (and a person told)."""

    model_config = ConfigDict(extra="forbid")

    first_interval: Annotated[timedelta, Bounds(low=SECOND, high=HOUR)] = timedelta(seconds=5)
    backoff: Annotated[float, Bounds(low=1.0, high=10.0)] = Field(default=2.0, ge=1.0)
    max_interval: Annotated[timedelta, Bounds(low=SECOND, high=DAY)] = timedelta(minutes=10)
    # Past this since the message was queued, a failing delivery is given up on.
    give_up_after: Annotated[timedelta, Bounds(low=MINUTE, high=30 * DAY)] = timedelta(hours=6)


class SurgePolicy(BaseModel):
    """SPEC §5's warning: a category or topic growing more than `growth` in 24 h opens an
    investigation, if the rise is also real (../shared/METRICS.md, "surge")."""

    model_config = ConfigDict(extra="forbid")

    growth: Annotated[float, Bounds(low=0.01, high=100.0)] = Field(default=0.30, gt=0)
    # At least this many tickets in the last 24 h: 2 -> 3 is +50 % and means nothing.
    min_count: Annotated[int, Bounds(low=1, high=1_000_000)] = Field(default=10, ge=1)
    # One-sided exact test of "more than before" (conditional binomial on the two counts).
    significance: float = Field(default=0.05, gt=0, lt=1)
    check_every: Annotated[timedelta, Bounds(low=MINUTE, high=DAY)] = timedelta(minutes=5)
    # One investigation per category (or topic) and cooldown window.
    cooldown: Annotated[timedelta, Bounds(low=HOUR, high=30 * DAY)] = timedelta(hours=24)
    # Tickets linked to the investigation as examples.
    sample: int = Field(default=10, ge=1, le=100)


class Clock(StrEnum):
    """How a promise's time is counted: every second (calendar), or working time only."""

    CALENDAR = "calendar"
    BUSINESS = "business"


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


_OFFICE_HOURS = ["09:00-12:00", "13:30-18:00"]
# Policy instants stay well inside what datetime can hold (year 9999), whatever the zone.
_LAST_YEAR = 9000


class Closure(BaseModel):
    """The company closed (a move, an outing), in the calendar's local time."""

    model_config = ConfigDict(extra="forbid")

    start: datetime
    end: datetime
    note: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> Closure:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("closure times are local wall times, without an offset")
        if self.end <= self.start:
            raise ValueError("a closure must end after it starts")
        if self.end.year >= _LAST_YEAR:
            raise ValueError(f"a closure must end before {_LAST_YEAR}")
        return self


class BusinessCalendar(BaseModel):
    """When the service desk works. `week` maps a weekday to its intervals; a day left out
    is off. For 24/7, give every day ["00:00-24:00"] and no public holidays."""

    model_config = ConfigDict(extra="forbid")

    # None: the policy's time_zone.
    time_zone: str | None = None
    week: dict[Weekday, list[str]] = Field(
        default_factory=lambda: {
            day: list(_OFFICE_HOURS)
            for day in (Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI)
        }
    )
    # Hours of a weekend day that is worked (调休).
    makeup_day: list[str] = Field(default_factory=lambda: list(_OFFICE_HOURS))
    # Country (and optionally subdivision, "CN" or "US-NY") whose public holidays and
    # make-up working days the `holidays` library adds to the two lists below when a
    # process loads its settings (activities.calendars); None adds nothing.
    public_holidays: str | None = "CN"
    holidays: list[date] = Field(default_factory=list)
    workdays: list[date] = Field(default_factory=list)
    closures: list[Closure] = Field(default_factory=list)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else check_time_zone(value)

    @field_validator("public_holidays", mode="before")
    @classmethod
    def _none_in_a_file(cls, value: object) -> object:
        # TOML has no null: "" says "no public holidays".
        return None if value == "" else value

    @field_validator("week")
    @classmethod
    def _some_work(cls, value: dict[Weekday, list[str]]) -> dict[Weekday, list[str]]:
        for intervals in value.values():
            business_time.check_day(intervals)
        if not any(value.values()):
            raise ValueError("a business calendar needs working hours on at least one weekday")
        return value

    @field_validator("makeup_day")
    @classmethod
    def _makeup(cls, value: list[str]) -> list[str]:
        return business_time.check_day(value)

    @classmethod
    def always_open(cls) -> BusinessCalendar:
        return cls(week={day: ["00:00-24:00"] for day in Weekday}, public_holidays=None)


class PromiseClocks(BaseModel):
    """Which clock each promise of one priority runs on."""

    model_config = ConfigDict(extra="forbid")

    first_response: Clock = Clock.CALENDAR
    sla: Clock = Clock.CALENDAR
    # BUSINESS: the daily check runs on working days only.
    progress_check: Clock = Clock.CALENDAR


class SlaWarning(BaseModel):
    """A reminder when this share of the SLA's time is used, to the ticket's assignee (or
    the supervisors when nobody has it yet) or to the supervisors."""

    model_config = ConfigDict(extra="forbid")

    at: float = Field(gt=0, lt=1)
    notify: Literal["assignee", "supervisor"]


class EscalationStep(BaseModel):
    """After a breach: who is told, and how long after the breach (on the SLA's clock)."""

    model_config = ConfigDict(extra="forbid")

    after: timedelta = Field(ge=timedelta(0), le=_LONGEST)
    to: str


class ReviewPolicy(BaseModel):
    """SPEC §5's weekly review: when it starts, what it samples, how deep a 5-Why goes,
    and how its follow-up actions are chased."""

    model_config = ConfigDict(extra="forbid")

    # A Schedule starts the review of the week before at this weekday and local time.
    weekday: Weekday = Weekday.MON
    at: time = time(10, 0)
    # None: the policy's time_zone. Weeks run Monday 00:00 to Monday 00:00 here.
    time_zone: str | None = None
    sample_size: int = Field(default=12, ge=1, le=200)
    # A 5-Why needs at least this many whys before its root cause.
    min_whys: int = Field(default=3, ge=1, le=10)
    # "Low satisfaction": CSAT at or below, or NPS at or below (a detractor).
    low_csat: int = Field(default=2, ge=1, le=5)
    detractor_nps: int = Field(default=6, ge=0, le=10)
    # Tickets whose root cause is among the week's most frequent ones are sampled too.
    top_root_causes: int = Field(default=3, ge=0, le=20)
    follow_ups_per_analysis: int = Field(default=10, ge=1, le=50)
    # The owner of a follow-up is reminded this long before its due date and at it; past
    # the due date by `grace`, it goes to `escalate_to`.
    remind_before: timedelta = Field(default=timedelta(days=1), ge=timedelta(0), le=_LONGEST)
    grace: timedelta = Field(default=timedelta(days=1), ge=timedelta(0), le=_LONGEST)
    escalate_to: str = "service_lead"
    # Furthest due date a follow-up may have.
    longest_follow_up: Annotated[timedelta, Bounds(low=DAY, high=_LONGEST)] = Field(
        default=timedelta(days=180), le=_LONGEST
    )
    history_events_per_run: Annotated[int, HISTORY_EVENTS] = Field(default=2000, ge=200)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else check_time_zone(value)


class FirstResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    live_vip: Annotated[timedelta, PROMISE] = timedelta(seconds=30)
    live_standard: Annotated[timedelta, PROMISE] = timedelta(seconds=60)
    async_any: Annotated[timedelta, PROMISE] = timedelta(hours=24)


class Labels(BaseModel):
    """Tag vocabulary (translatable): `<category>-<topic>-<priority>級`."""

    model_config = ConfigDict(extra="forbid")

    category: dict[Category, str] = Field(
        default_factory=lambda: {
            Category.TECHNICAL_FAULT: "故障",
            Category.ACCOUNT_SECURITY: "安全",
            Category.BUSINESS_INQUIRY: "咨詢",
            Category.COMPLAINT_SUGGESTION: "投訴建議",
        }
    )
    topic: dict[Topic, str] = Field(
        default_factory=lambda: {
            Topic.PAYMENT: "支付",
            Topic.LOGIN: "登錄",
            Topic.ORDER: "訂單",
            Topic.REFUND: "退款",
            Topic.WITHDRAWAL: "提現",
            Topic.MEMBERSHIP: "會員",
            Topic.VERIFICATION_CODE: "驗證碼",
            Topic.OTHER: "其他",
        }
    )
    priority_suffix: str = "級"


class TaskPriorities(BaseModel):
    """Temporal task-queue priority keys of a ticket's appends: 1 is served first, 5 last.

    What a person sent (a new intake; an agent's action, a customer's or a partner's
    message) is stored at `person_waiting`; what the ticket decided by itself (a timer's
    reminder or warning) at `quiet`. So at 10:00, when thousands of quiet tickets wake
    at once for their progress checks, a person's work on another ticket is stored and
    answered before theirs (docs/scaling.md). `None` leaves the ticket's own (3).

    A ticket's workflow tasks run at the ticket's own priority, `quiet` once it has
    answered its intake: the API raises it to `person_waiting` around a person's input
    while the queue is behind (api.client.TicketClient, `ApiSettings.raise_when_behind`).
    """

    model_config = ConfigDict(extra="forbid")

    person_waiting: int | None = Field(default=2, ge=1, le=5)
    quiet: int | None = Field(default=4, ge=1, le=5)

    @model_validator(mode="after")
    def _people_go_first(self) -> TaskPriorities:
        if (
            self.person_waiting is not None
            and self.quiet is not None
            and self.person_waiting >= self.quiet
        ):
            raise ValueError(
                f"person_waiting ({self.person_waiting}) must come before quiet ({self.quiet}):"
                " a lower key"
            )
        return self


class ServicePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    live_channels: list[Channel] = Field(
        default_factory=lambda: [Channel.APP_CHAT, Channel.WEB_CHAT, Channel.HOTLINE]
    )
    first_response: FirstResponse = Field(default_factory=FirstResponse)
    sla: dict[Priority, SlaTarget] = Field(default_factory=_default_sla)
    time_zone: str = "Asia/Shanghai"
    progress_check_at: time = time(10, 0)
    upgrade_review_after: Annotated[timedelta, Bounds(low=SHORTEST_REVIEW, high=_LONGEST)] = (
        timedelta(hours=24)
    )
    # A review decision names its next checkpoint (default upgrade_review_after), from
    # SHORTEST_REVIEW up to this.
    review_checkpoint_max: Annotated[timedelta, Bounds(low=SHORTEST_REVIEW, high=_LONGEST)] = Field(
        default=timedelta(days=30), le=_LONGEST
    )
    partner_update_every: Annotated[
        timedelta, Bounds(low=SHORTEST_PARTNER_UPDATE, high=_LONGEST)
    ] = timedelta(hours=6)
    auto_close_after: Annotated[timedelta, PROMISE] = timedelta(hours=72)
    # After closing, the customer is asked for CSAT and NPS (SPEC §5's outcome indicators)
    # and the ticket keeps listening this long for the answers, which always come after
    # it closed. 0 turns the survey off.
    feedback_window: Annotated[timedelta, Bounds(low=timedelta(0), high=90 * DAY)] = Field(
        default=timedelta(days=7), ge=timedelta(0)
    )
    # Where work goes. Addresses are the hand-off points of the department systems.
    departments: dict[str, str] = Field(
        default_factory=lambda: {
            "tech": "queue://tech-oncall",
            "product": "queue://product-triage",
            "operations": "queue://operations",
            "risk_control": "queue://risk-control",
            "finance": "queue://finance",
            "customer_service": "queue://cs-supervisors",
            "service_lead": "queue://cs-lead",
        }
    )
    # Where a message for one agent (an SLA warning to the assignee) goes.
    agent_address: str = "queue://agents/{agent_id}"
    route_by_category: dict[Category, str] = Field(
        default_factory=lambda: {
            Category.TECHNICAL_FAULT: "tech",
            Category.ACCOUNT_SECURITY: "risk_control",
            Category.BUSINESS_INQUIRY: "customer_service",
            Category.COMPLAINT_SUGGESTION: "product",
        }
    )
    supervisor_queue: str = "customer_service"
    emergency_group: list[str] = Field(
        default_factory=lambda: ["tech", "operations", "customer_service"]
    )
    upgrade_review_board: list[str] = Field(
        default_factory=lambda: ["customer_service", "tech", "product"]
    )
    labels: Labels = Field(default_factory=Labels)
    # Business hours, holidays and closures; which promises count working time only is
    # `clocks`. SPEC's numbers are calendar time: every clock defaults to it.
    business_hours: BusinessCalendar = Field(default_factory=BusinessCalendar)
    clocks: dict[Priority, PromiseClocks] = Field(
        default_factory=lambda: {priority: PromiseClocks() for priority in Priority}
    )
    # The SLA clock stops while the ticket waits on the customer (an agent asked them
    # something) and, if this is set, while it waits on a partner.
    pause_sla_on_partner: bool = False
    sla_warnings: Annotated[list[SlaWarning], Bounds(low=0, high=MOST_STEPS)] = Field(
        default_factory=lambda: [
            SlaWarning(at=0.75, notify="assignee"),
            SlaWarning(at=0.9, notify="supervisor"),
        ]
    )
    # After a breach: the first step at once (after 0), each next one on its own timer.
    escalation_ladder: Annotated[list[EscalationStep], Bounds(low=1, high=MOST_STEPS)] = Field(
        min_length=1,
        default_factory=lambda: [
            EscalationStep(after=timedelta(0), to="customer_service"),
            EscalationStep(after=timedelta(hours=2), to="service_lead"),
        ],
    )
    # A priority raised after intake: its promise counts from the reclassification (the
    # moment, for E, the emergency group convenes) or from intake.
    raised_priority_counts_from: Literal["reclassification", "intake"] = "reclassification"
    # The learned classifier overrides the keyword rules at intake, field by
    # field, where it is at least this sure; 1.0 turns it off.
    model_min_confidence: float = Field(default=0.8, ge=0, le=1)
    # Customer messages are written in the customer's locale (zh-CN -> zh-Hans, zh-TW ->
    # zh-Hant, en-* -> en); any other locale gets this one. An intake without a locale
    # gets the one its text's script points to (reader_locale), else this one.
    default_locale: str = "zh-Hans"
    # An intake without a zone: its locale's region decides (zh-TW -> Asia/Taipei), a
    # region left out here leaves the customer's times in `time_zone`.
    region_time_zones: dict[str, str] = Field(
        default_factory=lambda: {
            "CN": "Asia/Shanghai",
            "TW": "Asia/Taipei",
            "HK": "Asia/Hong_Kong",
            "MO": "Asia/Macau",
            "SG": "Asia/Singapore",
        }
    )
    # Hand-offs (work orders, reminders, alerts, partner contacts) are written for the
    # company's own people in this locale, times in `time_zone`; `staff_locales`
    # overrides it per recipient: a department (`tech`), `partner:<name>`,
    # `agent:<id>`, or `partner:` / `agent:` for every partner / agent.
    staff_locale: str = "zh-Hans"
    staff_locales: dict[str, str] = Field(default_factory=dict)
    delivery: DeliveryRetry = Field(default_factory=DeliveryRetry)
    priorities: TaskPriorities = Field(default_factory=TaskPriorities)
    surge: SurgePolicy = Field(default_factory=SurgePolicy)
    review: ReviewPolicy = Field(default_factory=ReviewPolicy)
    # A run continues as new past this many history events (about five months on a
    # department), far below the server's limit: a ticket open for months stays cheap to
    # replay on every worker restart.
    history_events_per_run: Annotated[int, HISTORY_EVENTS] = Field(default=1500, ge=200)
    # Demos and live end-to-end checks: 3600 makes an hour of policy pass in a second.
    time_scale: float = Field(default=1.0, gt=0, le=1_000_000)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_time_zone(value)

    @field_validator("region_time_zones")
    @classmethod
    def _known_region_zones(cls, value: dict[str, str]) -> dict[str, str]:
        return {region.upper(): check_time_zone(zone) for region, zone in value.items()}

    @field_validator("clocks")
    @classmethod
    def _clock_per_priority(
        cls, value: dict[Priority, PromiseClocks]
    ) -> dict[Priority, PromiseClocks]:
        return {priority: value.get(priority, PromiseClocks()) for priority in Priority}

    @field_validator("sla_warnings")
    @classmethod
    def _warnings_in_order(cls, value: list[SlaWarning]) -> list[SlaWarning]:
        return sorted(value, key=lambda warning: warning.at)

    # Never refuse what older tickets carry: this model is decoded again on every replay.
    # Cross-field checks (the ladder's departments) run when a process loads its
    # settings (unknown_departments), and an address still unknown at delivery is
    # reported, not lost.
    @field_validator("escalation_ladder")
    @classmethod
    def _ladder_in_order(cls, value: list[EscalationStep]) -> list[EscalationStep]:
        if any(b.after < a.after for a, b in pairwise(value)):
            raise ValueError("escalation_ladder steps must come in order of `after`")
        return value

    @field_validator("sla")
    @classmethod
    def _every_priority(cls, value: dict[Priority, SlaTarget]) -> dict[Priority, SlaTarget]:
        missing = set(Priority) - set(value)
        if missing:
            raise ValueError(f"sla needs a target for every priority, missing {sorted(missing)}")
        return value


# ---------------------------------------------------------------- pure rules


def check_time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}, expected e.g. 'Asia/Shanghai'") from None
    return value


def scaled(policy: ServicePolicy, duration: timedelta) -> timedelta:
    return duration / policy.time_scale


def is_live(policy: ServicePolicy, channel: Channel) -> bool:
    return channel in policy.live_channels


def first_response_promise(policy: ServicePolicy, channel: Channel, tier: Tier) -> timedelta:
    """The first-response time promised to the customer (as they read it: unscaled)."""
    if not is_live(policy, channel):
        return policy.first_response.async_any
    if tier is Tier.VIP:
        return policy.first_response.live_vip
    return policy.first_response.live_standard


def first_response_window(policy: ServicePolicy, channel: Channel, tier: Tier) -> timedelta:
    return scaled(policy, first_response_promise(policy, channel, tier))


def sla_target(policy: ServicePolicy, priority: Priority) -> SlaTarget:
    return policy.sla[priority]


# ---------------------------------------------------------------- clocks
#
# Promises are computed in policy time: with a time scale, policy time runs `time_scale`
# times faster than real time from the ticket's opening (the anchor), so a scaled policy
# keeps its daily rhythm (one 10:00 check per scaled day) and its business hours. With
# the default scale of 1 policy time is real time.


def policy_instant(policy: ServicePolicy, anchor: datetime, real: datetime) -> datetime:
    if policy.time_scale == 1:
        return real
    # A scaled ticket left open for years would run past year 9999 in policy time: held
    # at a far limit instead, so its timers go on firing rather than failing the task.
    limit = datetime(_LAST_YEAR, 1, 1, tzinfo=UTC) - anchor
    return anchor + min((real - anchor) * policy.time_scale, limit)


def real_instant(policy: ServicePolicy, anchor: datetime, instant: datetime) -> datetime:
    if policy.time_scale == 1:
        return instant
    return anchor + (instant - anchor) / policy.time_scale


def _slack(policy: ServicePolicy) -> timedelta:
    # Converting back to real time rounds to a microsecond, up to `time_scale` µs of
    # policy time: "strictly after" must not find the instant that just fired.
    return (
        timedelta(0)
        if policy.time_scale == 1
        else timedelta(microseconds=math.ceil(policy.time_scale))
    )


def working_calendar(policy: ServicePolicy) -> business_time.WorkingCalendar:
    calendar = policy.business_hours
    zone = ZoneInfo(calendar.time_zone or policy.time_zone)
    week = tuple(
        tuple(business_time.parse_hours(text) for text in calendar.week.get(day, []))
        for day in Weekday
    )
    closures = tuple(
        (
            closure.start.replace(tzinfo=zone).astimezone(UTC),
            closure.end.replace(tzinfo=zone).astimezone(UTC),
        )
        for closure in calendar.closures
    )
    return business_time.WorkingCalendar(
        zone=zone,
        week=week,
        makeup=tuple(business_time.parse_hours(text) for text in calendar.makeup_day),
        holidays=frozenset(calendar.holidays),
        workdays=frozenset(calendar.workdays),
        closures=closures,
    )


def clocks_for(policy: ServicePolicy, priority: Priority) -> PromiseClocks:
    return policy.clocks.get(priority, PromiseClocks())


def clock_add(
    policy: ServicePolicy, clock: Clock, anchor: datetime, start: datetime, amount: timedelta
) -> datetime:
    """The real instant `amount` of the clock's time (unscaled) after `start`."""
    begin = policy_instant(policy, anchor, start)
    if clock is Clock.BUSINESS:
        due = business_time.add(working_calendar(policy), begin, amount)
    else:
        due = begin + amount
    return real_instant(policy, anchor, due)


def clock_between(
    policy: ServicePolicy, clock: Clock, anchor: datetime, start: datetime, end: datetime
) -> timedelta:
    """How much of the clock's time (unscaled) passes between two real instants."""
    begin, until = policy_instant(policy, anchor, start), policy_instant(policy, anchor, end)
    if clock is Clock.BUSINESS:
        return business_time.between(working_calendar(policy), begin, until)
    return max(until - begin, timedelta(0))


def first_response_due(
    policy: ServicePolicy, opened_at: datetime, channel: Channel, tier: Tier, priority: Priority
) -> datetime:
    clock = clocks_for(policy, priority).first_response
    promise = first_response_promise(policy, channel, tier)
    return clock_add(policy, clock, opened_at, opened_at, promise)


def next_daily_check(
    policy: ServicePolicy, anchor: datetime, now: datetime, priority: Priority
) -> datetime:
    """The next `progress_check_at` in policy time strictly after now: every day, or
    every working day on the business clock. A DST day still fires at 10:00 local."""
    after = policy_instant(policy, anchor, now) + _slack(policy)
    if clocks_for(policy, priority).progress_check is Clock.BUSINESS:
        at = business_time.next_working_day_at(
            working_calendar(policy), after, policy.progress_check_at
        )
    else:
        at = business_time.next_day_at(ZoneInfo(policy.time_zone), after, policy.progress_check_at)
    real = real_instant(policy, anchor, at)
    # Past the policy-time limit the answer would not move on: a scaled day from now.
    return real if real > now else now + scaled(policy, timedelta(days=1))


def timer_events_per_day(policy: ServicePolicy, partners: int = 1) -> int:
    """At most how many events a ticket's own timers record in any one day of policy
    time, with `partners` partners engaged: what the policy alone can make a ticket do
    (what people send, and reports of failed deliveries, come on top).

    Each repeating timer is armed `scaled(period)` after it fired, as the ticket arms it,
    so a day holds at most `day // spacing + 1` of them. The once-only ones: the first
    response, each SLA warning, the breach, each escalation step and the auto-close. The
    10:00 check fires once a local day, twice in a day that loses an hour to DST.
    """
    day = scaled(policy, DAY)

    def repeats(period: timedelta) -> int:
        return day // max(scaled(policy, period), timedelta(microseconds=1)) + 1

    # A review decision may name any checkpoint from SHORTEST_REVIEW (ticket_rules).
    reviews = repeats(min(policy.upgrade_review_after, SHORTEST_REVIEW))
    once = 3 + len(policy.sla_warnings) + len(policy.escalation_ladder)
    return once + 2 + reviews + partners * repeats(policy.partner_update_every)


def is_raise(before: Priority, after: Priority) -> bool:
    return PRIORITY_RANK[after] < PRIORITY_RANK[before]


def delivery_retry_at(policy: ServicePolicy, attempts: int) -> timedelta:
    """How long after its `attempts`-th failure a delivery is tried again."""
    retry = policy.delivery
    # Capped before it grows: the 45th doubling of 5 s no longer fits a timedelta.
    growth = retry.backoff ** min(max(0, attempts - 1), 64)
    seconds = min(retry.first_interval.total_seconds() * growth, retry.max_interval.total_seconds())
    return scaled(policy, timedelta(seconds=seconds))


def rise_p_value(now: int, before: int) -> float:
    """How likely `now` tickets or more out of `now + before` are in the later window if
    the rate did not change: the exact one-sided conditional binomial test (p = 1/2) of
    two Poisson counts over windows of the same length. 40 against 20 gives 0.007; 30
    against 20, 0.10."""
    total = now + before
    if total == 0:
        return 1.0
    # In log space: exact enough, and quick for thousands of tickets a day.
    log_half = total * math.log(0.5)
    log_total = math.lgamma(total + 1)
    tail = sum(
        math.exp(log_total - math.lgamma(k + 1) - math.lgamma(total - k + 1) + log_half)
        for k in range(now, total + 1)
    )
    return min(1.0, tail)


def is_surge(policy: ServicePolicy, now: int, before: int) -> bool:
    """A surge against one baseline: enough tickets, more than `growth` up, and real."""
    surge = policy.surge
    return (
        now >= surge.min_count
        and now > before * (1 + surge.growth)
        and rise_p_value(now, before) < surge.significance
    )


def unknown_departments(policy: ServicePolicy) -> list[str]:
    """Departments the policy names without an address."""
    named = {
        step.to for step in policy.escalation_ladder if not step.to.startswith(AGENT_PREFIX)
    } | {policy.supervisor_queue}
    named |= set(policy.emergency_group) | set(policy.upgrade_review_board)
    named |= set(policy.route_by_category.values()) | {policy.review.escalate_to}
    return sorted(named - set(policy.departments))


def department_address(policy: ServicePolicy, department: str) -> str:
    if department.startswith(AGENT_PREFIX):
        return policy.agent_address.replace("{agent_id}", department.removeprefix(AGENT_PREFIX))
    try:
        return policy.departments[department]
    except KeyError:
        raise ValueError(
            f"unknown department {department!r}; known: {', '.join(sorted(policy.departments))}"
        ) from None


def reader_locale(policy: ServicePolicy, locale: str | None, text: str) -> str:
    """A customer's locale: the intake's, else the one its words' script points to
    (Latin script: English), else the policy's default."""
    return locale or language.script_locale(text) or policy.default_locale


def region_time_zone(policy: ServicePolicy, locale: str) -> str | None:
    """The zone of the region a locale names (zh-TW: Asia/Taipei); None: the policy's."""
    region = language.region_of(locale)
    return None if region is None else policy.region_time_zones.get(region)


def staff_locale(policy: ServicePolicy, recipient: str) -> str:
    """The locale a hand-off to `recipient` is written in: its own, its kind's
    (`partner:`, `agent:`), else the company's."""
    kind = recipient[: recipient.index(":") + 1] if ":" in recipient else None
    overrides = policy.staff_locales
    return overrides.get(recipient) or (kind and overrides.get(kind)) or policy.staff_locale


def tag_for(policy: ServicePolicy, category: Category, topic: Topic, priority: Priority) -> str:
    """`故障-支付-E級`: the label every collaborator sees and operators search for."""
    labels = policy.labels
    return f"{labels.category[category]}-{labels.topic[topic]}-{priority.value}{labels.priority_suffix}"
