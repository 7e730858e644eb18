"""The weekly review's contracts (SPEC §5): what is sampled and why, the 5-Why records,
the follow-up actions, and the review leads' actions on it, as plain typed data.

`REVIEW_ACTIONS` is the one table of what a review lead can do: the workflow registers
an update per entry, and the HTTP routes, the CLI commands and docs/reviews.md derive
from it, as the ticket's actions do from `workflows.contracts.ACTIONS`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_serializer, model_validator

from workflows.contracts import Handoff, check_root_cause
from workflows.policy import ServicePolicy
from workflows.primitives import Actor, Contract, Identifier, NonEmpty

_WEEK = re.compile(r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$")


def check_week(value: str) -> str:
    if not _WEEK.match(value):
        raise ValueError(f"week {value!r}: expected an ISO week such as 2026-W48")
    year, number = value.split("-W")
    try:
        date.fromisocalendar(int(year), int(number), 1)
    except ValueError:
        raise ValueError(f"week {value!r}: {year} has no week {number}") from None
    return value


Week = Annotated[str, Field(examples=["2026-W48"])]


def review_id(week: str) -> str:
    """One review per week: the id is the week's, so starting it twice gives one."""
    return f"review-{check_week(week)}"


class SampleReason(StrEnum):
    """Why a ticket was chosen: each is a stratum of the sample."""

    SLA_BREACHED = "sla_breached"
    REOPENED = "reopened"
    LOW_SATISFACTION = "low_satisfaction"
    ESCALATED = "escalated"
    FREQUENT_ROOT_CAUSE = "frequent_root_cause"
    SURGED_CATEGORY = "surged_category"


class SampledTicket(Contract):
    ticket_id: str
    reasons: list[SampleReason]
    tag: str | None = None
    root_cause: str | None = None


class Candidates(Contract):
    """The week's tickets per reason, before sampling, and what the report counts."""

    by_reason: dict[SampleReason, list[str]] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    root_causes: dict[str, str] = Field(default_factory=dict)
    root_cause_counts: dict[str, int] = Field(default_factory=dict)
    surged_categories: list[str] = Field(default_factory=list)


class SampleRequest(Contract):
    week: str
    period_start: datetime
    period_end: datetime
    policy: ServicePolicy


class Sample(Contract):
    tickets: list[SampledTicket]
    root_cause_counts: dict[str, int] = Field(default_factory=dict)
    surged_categories: list[str] = Field(default_factory=list)
    candidates: int = 0


class Step(Contract):
    """One line of an analysis, with who wrote it and when."""

    text: str
    author: Actor
    at: datetime


class FollowUpKind(StrEnum):
    PRODUCT_ITERATION = "product_iteration"
    PROCESS_CHANGE = "process_change"
    TRAINING = "training"


class FollowUpStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    DEFERRED = "deferred"


class FollowUp(Contract):
    """An action an analysis ended in, followed to done: its due date is a timer."""

    number: int
    ticket_id: str
    kind: FollowUpKind
    description: str
    owner: str
    due: datetime
    created_at: datetime
    status: FollowUpStatus = FollowUpStatus.OPEN
    note: str | None = None
    closed_at: datetime | None = None
    closed_by: Actor | None = None
    # 0: the early reminder is next, 1: the reminder at the due date, 2: the escalation,
    # 3: nothing more (escalated, or closed).
    stage: int = 0
    escalated_at: datetime | None = None


class Analysis(Contract):
    """A 5-Why: the surface problem, why 1 … why n, and a root cause from the vocabulary."""

    ticket_id: str
    surface_problem: Step | None = None
    whys: list[Step] = Field(default_factory=list)
    root_cause: str | None = None
    concluded: Step | None = None
    follow_ups: list[int] = Field(default_factory=list)


class ReviewEntryKind(StrEnum):
    STARTED = "started"
    PROBLEM = "problem"
    WHY = "why"
    CONCLUDED = "concluded"
    REMINDED = "reminded"
    ESCALATED = "escalated"
    FOLLOW_UP_CLOSED = "follow_up_closed"
    DELIVERY_FAILED = "delivery_failed"
    COMPLETED = "completed"


class ReviewEntry(Contract):
    """One line of the review's record in PostgreSQL (`review_entries`)."""

    review_id: str
    seq: int
    occurred_at: datetime
    kind: ReviewEntryKind
    actor: Actor
    ticket_id: str | None = None
    follow_up: int | None = None
    text: str | None = None


class FailedReminder(Contract):
    """A reminder or escalation the relay gave up on, as the report shows it: the outbox
    row's key, and what failed where (`<kind> to <destination>: <error>`).

    Written as the one line `<key> <said>` it always was, so states already stored (the
    report reads them), carried across continue-as-new or read by another build keep
    their shape; such a line reads back into the two fields."""

    dedupe_key: str
    said: str

    @model_validator(mode="before")
    @classmethod
    def _from_line(cls, value: Any) -> Any:
        if isinstance(value, str):
            dedupe_key, _, said = value.partition(" ")
            return {"dedupe_key": dedupe_key, "said": said}
        return value

    @model_serializer(mode="plain")
    def line(self) -> str:
        return f"{self.dedupe_key} {self.said}"


class ReviewState(Contract):
    review_id: str
    week: str
    period_start: datetime
    period_end: datetime
    started_at: datetime
    sample: list[SampledTicket] = Field(default_factory=list)
    candidates: int = 0
    root_cause_counts: dict[str, int] = Field(default_factory=dict)
    surged_categories: list[str] = Field(default_factory=list)
    analyses: dict[str, Analysis] = Field(default_factory=dict)
    follow_ups: list[FollowUp] = Field(default_factory=list)
    completed_at: datetime | None = None
    runs: int = 1
    next_seq: int = 1
    seen_actions: list[str] = Field(default_factory=list)
    # What each remembered id asked (primitives.fingerprint): the same id on another
    # action is refused. Ids applied before fingerprints were kept have none.
    action_fingerprints: dict[str, str] = Field(default_factory=dict)
    # Reminders or escalations the relay gave up on: shown in the report.
    delivery_failures: list[FailedReminder] = Field(default_factory=list)


class ReviewInput(Contract):
    week: str
    period_start: datetime
    period_end: datetime
    policy: ServicePolicy
    carried_state: ReviewState | None = None

    @field_validator("week")
    @classmethod
    def _iso_week(cls, value: str) -> str:
        return check_week(value)


class ReviewRecord(Contract):
    """What one drain of the review decided: its new entries, its current state (the
    report reads it), and the reminders and escalations to deliver."""

    review_id: str
    state: ReviewState
    entries: list[ReviewEntry]
    handoffs: list[Handoff] = Field(default_factory=list)


class ReviewKickoff(Contract):
    policy: ServicePolicy


# ---------------------------------------------------------------- the leads' actions


class ReviewAction(Contract):
    """What a review lead does on a review: the base of the table below."""

    route: ClassVar[str]
    command: ClassVar[str]
    actor: Actor
    # Sent again after a timeout with the same id, an action is applied once.
    action_id: Identifier | None = None


class RecordProblem(ReviewAction):
    """The surface problem a sampled ticket showed: the first line of its 5-Why."""

    route = "problems"
    command = "problem"
    type: Literal["record_problem"] = "record_problem"
    ticket_id: Identifier
    text: NonEmpty


class AddWhy(ReviewAction):
    """The next "why?" of a sampled ticket's analysis (direct cause, deeper causes)."""

    route = "whys"
    command = "why"
    type: Literal["add_why"] = "add_why"
    ticket_id: Identifier
    text: NonEmpty


class NewFollowUp(Contract):
    kind: FollowUpKind
    description: NonEmpty
    owner: Identifier
    due: datetime

    @field_validator("due")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # Kept and shown in UTC (the report renders it in the review's zone).
        if value.tzinfo is None:
            raise ValueError("a due date needs its UTC offset, e.g. 2026-12-04T18:00:00+08:00")
        try:
            return value.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00+01:00 has no UTC instant
            raise ValueError("the due date is out of range") from None


class Conclude(ReviewAction):
    """The root cause (a `<kind>-<area>` tag) and the actions the analysis ends in."""

    route = "conclusions"
    command = "conclude"
    type: Literal["conclude"] = "conclude"
    ticket_id: Identifier
    root_cause: str
    follow_ups: list[NewFollowUp] = Field(min_length=1, max_length=50)

    @field_validator("root_cause")
    @classmethod
    def _tag(cls, value: str) -> str:
        return check_root_cause(value)


class CloseFollowUp(ReviewAction):
    """A follow-up action done, or deferred with a reason."""

    route = "follow-up-closures"
    command = "close-follow-up"
    type: Literal["close_follow_up"] = "close_follow_up"
    number: int = Field(ge=1)
    outcome: Literal["done", "deferred"]
    note: NonEmpty


REVIEW_ACTIONS: tuple[type[ReviewAction], ...] = (RecordProblem, AddWhy, Conclude, CloseFollowUp)


def review_action_name(action: type[ReviewAction]) -> str:
    name: str = action.model_fields["type"].default
    return name


class ReviewView(Contract):
    """What a review action returns and the `state` query answers."""

    review_id: str
    week: str
    complete: bool
    waiting_for: str
    state: ReviewState
