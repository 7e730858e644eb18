"""The ticket's typed record: one model per kind of event.

A `DomainEvent` is the envelope (ticket, seq, when, who) around one payload model, chosen
by its `type`. The workflow builds these models, the event store writes them as jsonb
(the `type` column holds the discriminator), and the projection, the thread and the
API read them back as the same models.

Every word a person sends is in its event: the intake's subject and description, every
agent reply, customer replies, partner answers, progress and milestone notes, review
decisions, results and long-term plans. `Audience` and `words()` say which events make
up the conversation (`GET /v1/tickets/{id}/thread`) and who reads them.

Events written by older code still read: `upcast` turns their payloads into the
current models (fields they lacked take their defaults, renamed keys are renamed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin

from pydantic import AfterValidator, BaseModel, Field, model_validator
from pydantic.fields import FieldInfo

from workflows.primitives import Actor, ContextSnapshot, Contract
from workflows.vocabulary import (
    Category,
    Channel,
    CloseReason,
    CustomerReplyKind,
    Milestone,
    Priority,
    ResultKind,
    TicketStatus,
    Tier,
    Topic,
)


def _utc(value: datetime) -> datetime:
    # The workflow writes aware UTC instants; a naive one (an old or hand-written
    # payload) is read as UTC, never as the reader's local time.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


Instant = Annotated[datetime, AfterValidator(_utc)]


# ---------------------------------------------------------------- personal data
# Every text field of an event (a `str`, a list of them, a model holding one) may hold
# what a person typed, and an erasure clears it (stores/erasure.py), unless the field
# says why it cannot hold personal data. A new field is personal until its author says so:
# no event type leaks by being forgotten.


@dataclass(frozen=True)
class NotPersonal:
    """On a text field an erasure keeps: why it holds no personal data."""

    why: str


@dataclass(frozen=True)
class Pseudonymised:
    """On the customer's id: an erasure replaces it with the erasure's pseudonym, the same
    on all of that customer's tickets, so "tickets per customer" still counts."""


Tag = Annotated[
    str, NotPersonal("made by the classification rules from the category, topic and priority")
]
RootCause = Annotated[
    str,
    NotPersonal(
        "a `<kind>-<area>` tag of the review's taxonomy (contracts.check_root_cause), "
        "which the weekly review counts"
    ),
]
Department = Annotated[
    str, NotPersonal("a department of the policy's routing table, checked by the ticket's rules")
]
Partner = Annotated[
    str, NotPersonal("the partner's name: the route its contacts go by (`partner:<name>`)")
]
StaffId = Annotated[
    str, NotPersonal("a staff member's or a staff queue's opaque id, never the customer's")
]


class EventType(StrEnum):
    TICKET_OPENED = "ticket_opened"
    DUPLICATE_INTAKE = "duplicate_intake"
    ACKNOWLEDGED = "acknowledged"
    CLASSIFIED = "classified"
    EMERGENCY_GROUP_CONVENED = "emergency_group_convened"
    RISK_CONTROL_STARTED = "risk_control_started"
    FIRST_RESPONDED = "first_responded"
    FIRST_RESPONSE_BREACHED = "first_response_breached"
    AGENT_REPLIED = "agent_replied"
    NOTE_ADDED = "note_added"
    ASSIGNED = "assigned"
    DISPATCHED = "dispatched"
    PROGRESS_POSTED = "progress_posted"
    WORK_ORDER_DONE = "work_order_done"
    PROGRESS_REMINDED = "progress_reminded"
    MILESTONE_RECORDED = "milestone_recorded"
    SLA_BREACHED = "sla_breached"
    SLA_PAUSED = "sla_paused"
    SLA_RESUMED = "sla_resumed"
    SLA_WARNED = "sla_warned"
    SLA_ESCALATED = "sla_escalated"
    UPGRADE_REVIEW_CONVENED = "upgrade_review_convened"
    REVIEW_DECISION_RECORDED = "review_decision_recorded"
    PARTNER_ENGAGED = "partner_engaged"
    PARTNER_UPDATE_SENT = "partner_update_sent"
    PARTNER_ANSWERED = "partner_answered"
    RESOLVED = "resolved"
    CUSTOMER_REPLIED = "customer_replied"
    REOPENED = "reopened"
    FEEDBACK_REQUESTED = "feedback_requested"
    CSAT_RECORDED = "csat_recorded"
    NPS_RECORDED = "nps_recorded"
    STATUS_CHANGED = "status_changed"
    ACTION_REJECTED = "action_rejected"
    DELIVERY_FAILED = "delivery_failed"
    CLOSED = "closed"


class Audience(StrEnum):
    """Who reads an entry of the conversation."""

    CUSTOMER = "customer"  # said to or by the customer, on the ticket's channel
    INTERNAL = "internal"  # between agents, departments, partners and reviewers


class EventData(Contract):
    """A payload. Subclasses name their `type` and, if a person speaks in them, the
    audience of those words."""

    audience: ClassVar[Audience | None] = None
    # The field that holds what a person said, if one does.
    said_in: ClassVar[str | None] = None

    @classmethod
    def personal_fields(cls) -> tuple[str, ...]:
        """The fields an erasure clears: every text field not marked `NotPersonal` (or
        `Pseudonymised`)."""
        return tuple(
            name
            for name, field in cls.model_fields.items()
            if not _marked(field.metadata) and _free_text(field.annotation)
        )

    @classmethod
    def pseudonymised_fields(cls) -> tuple[str, ...]:
        return tuple(
            name
            for name, field in cls.model_fields.items()
            if any(isinstance(m, Pseudonymised) for m in field.metadata)
        )

    def words(self) -> str | None:
        """What a person said in this event, if anything."""
        if self.said_in is None:
            return None
        said = getattr(self, self.said_in)
        return said if isinstance(said, str) and said else None


# ---------------------------------------------------------------- intake (SPEC §1, §2)


class TicketOpened(EventData):
    type: Literal[EventType.TICKET_OPENED] = EventType.TICKET_OPENED
    audience = Audience.CUSTOMER
    channel: Channel
    tier: Tier
    customer_id: Annotated[str, Pseudonymised()]
    category: Category
    topic: Topic
    priority: Priority
    tag: Tag
    reason: str  # the rules quote the words they matched
    sla_due_at: Instant
    first_response_due_at: Instant
    # Recorded since the typed record; None on tickets opened before it.
    subject: str | None = None
    description: str | None = None
    locale: str | None = None
    attachments: list[str] = Field(default_factory=list)
    context: ContextSnapshot | None = None

    def words(self) -> str | None:
        said = [text for text in (self.subject, self.description) if text]
        return "\n\n".join(said) or None


class DuplicateIntake(EventData):
    """Never recorded by today's ticket: a duplicate intake ends its run before anything
    is stored (the store's intake claim refuses the key). Kept so that any row of this
    type still reads."""

    type: Literal[EventType.DUPLICATE_INTAKE] = EventType.DUPLICATE_INTAKE
    duplicate_of: Annotated[str, NotPersonal("a ticket id, made by the system")] | None = None


class Acknowledged(EventData):
    type: Literal[EventType.ACKNOWLEDGED] = EventType.ACKNOWLEDGED
    expect_progress_by: Instant


class Classified(EventData):
    type: Literal[EventType.CLASSIFIED] = EventType.CLASSIFIED
    audience = Audience.INTERNAL
    category: Category
    topic: Topic
    priority: Priority
    tag: Tag
    previous_tag: Tag | None = None
    reason: str  # the rules quote the words they matched
    automatic: bool = False
    sla_due_at: Instant | None = None
    # A raised priority's promise counts from here (the reclassification, by default).
    sla_counts_from: Instant | None = None
    # The learned classifier that made an automatic classification, if one did.
    model_version: (
        Annotated[str, NotPersonal("the learned classifier's version, named by its training")]
        | None
    ) = None

    def words(self) -> str | None:
        return None if self.automatic else self.reason


class EmergencyGroupConvened(EventData):
    type: Literal[EventType.EMERGENCY_GROUP_CONVENED] = EventType.EMERGENCY_GROUP_CONVENED
    groups: list[Department]


class RiskControlStarted(EventData):
    type: Literal[EventType.RISK_CONTROL_STARTED] = EventType.RISK_CONTROL_STARTED


# ---------------------------------------------------------------- handling (SPEC §3)


class FirstResponded(EventData):
    type: Literal[EventType.FIRST_RESPONDED] = EventType.FIRST_RESPONDED
    seconds: float
    within_target: bool


class FirstResponseBreached(EventData):
    type: Literal[EventType.FIRST_RESPONSE_BREACHED] = EventType.FIRST_RESPONSE_BREACHED
    target_seconds: float


class AgentReplied(EventData):
    """Every reply an agent sends the customer (the first one also records
    `first_responded`)."""

    type: Literal[EventType.AGENT_REPLIED] = EventType.AGENT_REPLIED
    audience = Audience.CUSTOMER
    said_in = "message"
    message: str
    # The knowledge base's reply script the words were rendered from, if any.
    script_id: (
        Annotated[str, NotPersonal("a knowledge entry's id, which the API checks exists")] | None
    ) = None


class NoteAdded(EventData):
    """A staff member's internal note: in the thread for staff, never sent to the customer."""

    type: Literal[EventType.NOTE_ADDED] = EventType.NOTE_ADDED
    audience = Audience.INTERNAL
    said_in = "text"
    text: str


class Assigned(EventData):
    type: Literal[EventType.ASSIGNED] = EventType.ASSIGNED
    agent_id: StaffId


class Dispatched(EventData):
    type: Literal[EventType.DISPATCHED] = EventType.DISPATCHED
    audience = Audience.INTERNAL
    said_in = "note"
    departments: list[Department]
    transfers: int
    note: str | None = None


class ProgressPosted(EventData):
    type: Literal[EventType.PROGRESS_POSTED] = EventType.PROGRESS_POSTED
    audience = Audience.INTERNAL
    said_in = "note"
    department: Department
    response_seconds: float
    note: str | None = None


class WorkOrderDone(EventData):
    type: Literal[EventType.WORK_ORDER_DONE] = EventType.WORK_ORDER_DONE
    department: Department


class ProgressReminded(EventData):
    type: Literal[EventType.PROGRESS_REMINDED] = EventType.PROGRESS_REMINDED
    departments: list[Department]


class MilestoneRecorded(EventData):
    type: Literal[EventType.MILESTONE_RECORDED] = EventType.MILESTONE_RECORDED
    audience = Audience.INTERNAL
    said_in = "note"
    milestone: Milestone
    meets_sla: bool
    note: str | None = None


class SlaBreached(EventData):
    type: Literal[EventType.SLA_BREACHED] = EventType.SLA_BREACHED
    priority: Priority
    milestone: Milestone
    due_at: Instant


class SlaPaused(EventData):
    """The SLA clock stopped: the ticket waits on the customer (or a partner)."""

    type: Literal[EventType.SLA_PAUSED] = EventType.SLA_PAUSED
    reason: TicketStatus


class SlaResumed(EventData):
    type: Literal[EventType.SLA_RESUMED] = EventType.SLA_RESUMED
    # On the SLA's clock (working time on a business clock), unscaled.
    paused_seconds: float
    total_paused_seconds: float
    sla_due_at: Instant | None = None


class SlaWarned(EventData):
    """Part of the SLA's time is used: someone is told before it breaches."""

    type: Literal[EventType.SLA_WARNED] = EventType.SLA_WARNED
    share: float
    sla_due_at: Instant
    notified: list[StaffId]


class SlaEscalated(EventData):
    """A later step of the escalation ladder after a breach (the first is `sla_breached`)."""

    type: Literal[EventType.SLA_ESCALATED] = EventType.SLA_ESCALATED
    level: int
    to: StaffId


class UpgradeReviewConvened(EventData):
    type: Literal[EventType.UPGRADE_REVIEW_CONVENED] = EventType.UPGRADE_REVIEW_CONVENED
    number: int


class ReviewDecisionRecorded(EventData):
    type: Literal[EventType.REVIEW_DECISION_RECORDED] = EventType.REVIEW_DECISION_RECORDED
    audience = Audience.INTERNAL
    said_in = "decision"
    decision: str
    attendees: list[StaffId] = Field(default_factory=list)
    next_review_at: Instant | None = None


class PartnerEngaged(EventData):
    type: Literal[EventType.PARTNER_ENGAGED] = EventType.PARTNER_ENGAGED
    audience = Audience.INTERNAL
    said_in = "problem"
    partner: Partner
    expected_by: Instant
    problem: str | None = None
    checkpoints: list[str] = Field(default_factory=list)


class PartnerUpdateSent(EventData):
    type: Literal[EventType.PARTNER_UPDATE_SENT] = EventType.PARTNER_UPDATE_SENT
    partner: Partner
    number: int


class PartnerAnswered(EventData):
    type: Literal[EventType.PARTNER_ANSWERED] = EventType.PARTNER_ANSWERED
    audience = Audience.INTERNAL
    said_in = "answer"
    partner: Partner
    final: bool
    answer: str | None = None


# ---------------------------------------------------------------- closure (SPEC §4, §5)


class Resolved(EventData):
    type: Literal[EventType.RESOLVED] = EventType.RESOLVED
    audience = Audience.CUSTOMER
    result_kind: ResultKind
    root_cause: RootCause
    resolution_seconds: float
    message: str | None = None
    compensation: str | None = None

    def words(self) -> str | None:
        if self.message and self.compensation:
            return f"{self.message}\n\n{self.compensation}"
        return self.message


class CustomerReplied(EventData):
    type: Literal[EventType.CUSTOMER_REPLIED] = EventType.CUSTOMER_REPLIED
    audience = Audience.CUSTOMER
    kind: CustomerReplyKind
    after_close: bool = False
    text: str | None = None

    def words(self) -> str | None:
        # "Solved" / "not solved" is an answer even without text.
        return self.text or (None if self.kind is CustomerReplyKind.MESSAGE else self.kind.value)


class Reopened(EventData):
    type: Literal[EventType.REOPENED] = EventType.REOPENED
    count: int


class FeedbackRequested(EventData):
    type: Literal[EventType.FEEDBACK_REQUESTED] = EventType.FEEDBACK_REQUESTED
    until: Instant


class CsatRecorded(EventData):
    type: Literal[EventType.CSAT_RECORDED] = EventType.CSAT_RECORDED
    audience = Audience.CUSTOMER
    score: int = Field(ge=1, le=5)
    text: str | None = None

    def words(self) -> str | None:
        return f"CSAT {self.score}" + (f": {self.text}" if self.text else "")


class NpsRecorded(EventData):
    type: Literal[EventType.NPS_RECORDED] = EventType.NPS_RECORDED
    audience = Audience.CUSTOMER
    score: int = Field(ge=0, le=10)
    text: str | None = None

    def words(self) -> str | None:
        return f"NPS {self.score}" + (f": {self.text}" if self.text else "")


class StatusChanged(EventData):
    type: Literal[EventType.STATUS_CHANGED] = EventType.STATUS_CHANGED
    previous: TicketStatus
    to: TicketStatus


class ActionRejected(EventData):
    type: Literal[EventType.ACTION_REJECTED] = EventType.ACTION_REJECTED
    audience = Audience.INTERNAL
    said_in = "text"
    action: Annotated[str, NotPersonal("the refused action's name, from the table of actions")]
    reason: str  # the rules' sentence may quote what the sender typed
    # What the refused sender said (a late partner answer, a misfit note): kept, not lost.
    text: str | None = None


class DeliveryFailed(EventData):
    """A message or hand-off that never reached its destination (the relay gave up)."""

    type: Literal[EventType.DELIVERY_FAILED] = EventType.DELIVERY_FAILED
    dedupe_key: Annotated[
        str, NotPersonal("the outbox row's key: ticket id, sequence, kind and recipient")
    ]
    kind: Annotated[str, NotPersonal("a message or hand-off kind")]
    destination: Annotated[
        str,
        NotPersonal(
            "a channel's name, a department's address or a partner's route: never the "
            "customer's own address, which the gateways map from the opaque customer id"
        ),
    ]
    attempts: int
    error: str  # an SMTP answer may quote the address


class Closed(EventData):
    type: Literal[EventType.CLOSED] = EventType.CLOSED
    audience = Audience.CUSTOMER
    said_in = "long_term_plan"
    reason: CloseReason
    root_cause: RootCause | None = None
    long_term_plan: str | None = None


EventPayload = Annotated[
    TicketOpened
    | DuplicateIntake
    | Acknowledged
    | Classified
    | EmergencyGroupConvened
    | RiskControlStarted
    | FirstResponded
    | FirstResponseBreached
    | AgentReplied
    | NoteAdded
    | Assigned
    | Dispatched
    | ProgressPosted
    | WorkOrderDone
    | ProgressReminded
    | MilestoneRecorded
    | SlaBreached
    | SlaPaused
    | SlaResumed
    | SlaWarned
    | SlaEscalated
    | UpgradeReviewConvened
    | ReviewDecisionRecorded
    | PartnerEngaged
    | PartnerUpdateSent
    | PartnerAnswered
    | Resolved
    | CustomerReplied
    | Reopened
    | FeedbackRequested
    | CsatRecorded
    | NpsRecorded
    | StatusChanged
    | ActionRejected
    | DeliveryFailed
    | Closed,
    Field(discriminator="type"),
]


def _marked(metadata: list[Any] | tuple[Any, ...]) -> bool:
    return any(isinstance(m, NotPersonal | Pseudonymised) for m in metadata)


def _free_text(annotation: Any) -> bool:
    """Whether a value of this type may hold text a person typed: a `str` (not an enum,
    not a literal), or a list, union or model holding one, unless marked."""
    if get_origin(annotation) is Annotated:
        base, *metadata = get_args(annotation)
        return not _marked(metadata) and _free_text(base)
    if get_origin(annotation) is Literal:
        return False
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return False
        if issubclass(annotation, BaseModel):
            return any(
                not _marked(f.metadata) and _free_text(f.annotation)
                for f in annotation.model_fields.values()
            )
        return issubclass(annotation, str)
    return any(_free_text(arg) for arg in get_args(annotation))


def _reasons(annotation: Any) -> list[str]:
    if get_origin(annotation) is Annotated:
        base, *metadata = get_args(annotation)
        return [m.why for m in metadata if isinstance(m, NotPersonal)] or _reasons(base)
    return [why for arg in get_args(annotation) for why in _reasons(arg)]


def _why_kept(field: FieldInfo) -> str | None:
    found = [m.why for m in field.metadata if isinstance(m, NotPersonal)]
    found += _reasons(field.annotation)
    return found[0] if found else None


def not_personal(model: type[EventData]) -> dict[str, str]:
    """The text fields an erasure keeps, each with why it holds no personal data."""
    return {
        name: why
        for name, field in model.model_fields.items()
        if (why := _why_kept(field)) is not None
    }


PAYLOADS: dict[EventType, type[EventData]] = {
    model.model_fields["type"].default: model
    for model in EventData.__subclasses__()  # every payload derives from EventData directly
}


class DomainEvent(Contract):
    """One fact about a ticket. (ticket_id, seq) is its identity in the event store."""

    ticket_id: str
    seq: int = Field(ge=1)
    occurred_at: Instant
    actor: Actor
    data: EventPayload

    @property
    def type(self) -> EventType:
        return self.data.type

    @model_validator(mode="before")
    @classmethod
    def _upcast(cls, value: Any) -> Any:
        """The stored shape (and the one before the typed record): `type` beside a
        plain `data` object, which may lack fields added since."""
        if isinstance(value, dict) and "type" in value:
            value = dict(value)
            kind = value.pop("type")
            value["data"] = upcast(kind, value.get("data"))
        return value


# Keys older code wrote under another name, by event type.
_RENAMED: dict[EventType, dict[str, str]] = {
    EventType.STATUS_CHANGED: {"from": "previous"},
}


def upcast(kind: str, data: Any) -> Any:
    """A stored payload (without its type) as the current model's input."""
    if isinstance(data, EventData):
        return data
    found = dict(data or {})
    renamed = _RENAMED.get(EventType(kind), {})
    for old, new in renamed.items():
        if old in found:
            found[new] = found.pop(old)
    found["type"] = kind
    return found


def stored_data(event: DomainEvent) -> dict[str, Any]:
    """The payload as the events table's jsonb holds it: the type lives in its column."""
    return event.data.model_dump(mode="json", exclude={"type"})
