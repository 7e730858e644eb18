"""ServicePolicy: every number of the service promise, and the pure rules that read it.

Defaults are SPEC.md's. Operators override them by environment or file through
`workers.settings.Settings`; the workflow receives the policy in its input, so a ticket
keeps the promise it was opened under even if the policy changes later.

This module is imported into workflows through `imports_passed_through()`: zoneinfo
does not work inside the sandbox, and these are pure functions of their arguments.
"""

from __future__ import annotations

import math
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workflows.vocabulary import Category, Channel, Milestone, Priority, Tier, Topic


class SlaTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    within: timedelta
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

    first_interval: timedelta = timedelta(seconds=5)
    backoff: float = Field(default=2.0, ge=1.0)
    max_interval: timedelta = timedelta(minutes=10)
    # Past this since the message was queued, a failing delivery is given up on.
    give_up_after: timedelta = timedelta(hours=6)


class SurgePolicy(BaseModel):
    """SPEC §5's warning: a category or topic growing more than `growth` in 24 h opens an
    investigation, if the rise is also real (../shared/METRICS.md, "surge")."""

    model_config = ConfigDict(extra="forbid")

    growth: float = Field(default=0.30, gt=0)
    # At least this many tickets in the last 24 h: 2 -> 3 is +50 % and means nothing.
    min_count: int = Field(default=10, ge=1)
    # One-sided exact test of "more than before" (conditional binomial on the two counts).
    significance: float = Field(default=0.05, gt=0, lt=1)
    check_every: timedelta = timedelta(minutes=5)
    # One investigation per category (or topic) and cooldown window.
    cooldown: timedelta = timedelta(hours=24)
    # Tickets linked to the investigation as examples.
    sample: int = Field(default=10, ge=1, le=100)


class FirstResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    live_vip: timedelta = timedelta(seconds=30)
    live_standard: timedelta = timedelta(seconds=60)
    async_any: timedelta = timedelta(hours=24)


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


class ServicePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    live_channels: list[Channel] = Field(
        default_factory=lambda: [Channel.APP_CHAT, Channel.WEB_CHAT, Channel.HOTLINE]
    )
    first_response: FirstResponse = Field(default_factory=FirstResponse)
    sla: dict[Priority, SlaTarget] = Field(default_factory=_default_sla)
    time_zone: str = "Asia/Shanghai"
    progress_check_at: time = time(10, 0)
    upgrade_review_after: timedelta = timedelta(hours=24)
    partner_update_every: timedelta = timedelta(hours=6)
    auto_close_after: timedelta = timedelta(hours=72)
    # After closing, the customer is asked for CSAT and NPS (SPEC §5's outcome indicators)
    # and the ticket keeps listening this long for the answers, which always come after
    # it closed. 0 turns the survey off.
    feedback_window: timedelta = Field(default=timedelta(days=7), ge=timedelta(0))
    # Where work goes. Addresses are the hand-off points of the department systems.
    departments: dict[str, str] = Field(
        default_factory=lambda: {
            "tech": "queue://tech-oncall",
            "product": "queue://product-triage",
            "operations": "queue://operations",
            "risk_control": "queue://risk-control",
            "finance": "queue://finance",
            "customer_service": "queue://cs-supervisors",
        }
    )
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
    # Customer messages are written in the customer's locale (zh-CN -> zh-Hans, zh-TW ->
    # zh-Hant, en-* -> en); any other locale gets this one.
    default_locale: str = "zh-Hans"
    delivery: DeliveryRetry = Field(default_factory=DeliveryRetry)
    surge: SurgePolicy = Field(default_factory=SurgePolicy)
    # A run continues as new past this many history events (about five months on a
    # department), far below the server's limit: a ticket open for months stays cheap to
    # replay on every worker restart.
    history_events_per_run: int = Field(default=1500, ge=200)
    # Demos and live end-to-end checks: 3600 makes an hour of policy pass in a second.
    time_scale: float = Field(default=1.0, gt=0)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_time_zone(value)

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


def sla_due(policy: ServicePolicy, priority: Priority, since: datetime) -> datetime:
    return since + scaled(policy, policy.sla[priority].within)


def next_progress_check(policy: ServicePolicy, now: datetime) -> datetime:
    """The next `progress_check_at` wall-clock time in the policy's zone, strictly after now.

    Computed on the local calendar date and converted back to an aware instant, so a day
    with a DST jump still fires at 10:00 local. With a time scale, the real wait is
    shortened by the same factor as every other duration.
    """
    zone = ZoneInfo(policy.time_zone)
    local_now = now.astimezone(zone)
    candidate = datetime.combine(local_now.date(), policy.progress_check_at, tzinfo=zone)
    if candidate <= local_now:
        candidate = datetime.combine(
            local_now.date() + timedelta(days=1), policy.progress_check_at, tzinfo=zone
        )
    wait = candidate.astimezone(now.tzinfo) - now
    return now + scaled(policy, wait)


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


def department_address(policy: ServicePolicy, department: str) -> str:
    try:
        return policy.departments[department]
    except KeyError:
        raise ValueError(
            f"unknown department {department!r}; known: {', '.join(sorted(policy.departments))}"
        ) from None


def tag_for(policy: ServicePolicy, category: Category, topic: Topic, priority: Priority) -> str:
    """`故障-支付-E級`: the label every collaborator sees and operators search for."""
    labels = policy.labels
    return f"{labels.category[category]}-{labels.topic[topic]}-{priority.value}{labels.priority_suffix}"
