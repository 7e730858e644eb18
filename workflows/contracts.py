"""The ticket's contracts: plain pydantic data passed end to end through Temporal.

Every message has one input model, so fields can be added later without breaking
callers. Nothing here reads a clock or generates ids: the workflow passes
`workflow.now()` explicitly, which keeps these models safe inside the sandbox.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from workflows.policy import ServicePolicy
from workflows.vocabulary import (
    Category,
    Channel,
    CloseReason,
    Milestone,
    Priority,
    ResultKind,
    Role,
    TicketStatus,
    Tier,
    Topic,
)

# PostgreSQL cannot store a NUL character in text: refused here, with the field named,
# rather than failing the append that would carry it.
_NO_NUL = r"^[^\x00]*$"
NonEmpty = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000, pattern=_NO_NUL)
]
Identifier = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=_NO_NUL)
]


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Actor(Contract):
    """Who did something. `id` is an opaque staff or system id, never a name or phone."""

    id: Identifier
    role: Role = Role.AGENT


SYSTEM = Actor(id="ticketflow", role=Role.SYSTEM)


# ---------------------------------------------------------------- intake


class ContextSnapshot(Contract):
    """What the gateway captured around the problem (問題快照), not asked of the user."""

    device_model: str | None = None
    os_version: str | None = None
    app_version: str | None = None
    operation_path: list[str] = Field(default_factory=list)
    occurred_at: datetime | None = None
    ip: str | None = None
    user_agent: str | None = None
    region: str | None = None
    affected_users: int | None = Field(default=None, ge=0)


class Intake(Contract):
    idempotency_key: Identifier
    channel: Channel
    customer_id: Identifier
    tier: Tier = Tier.STANDARD
    subject: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=_NO_NUL)
    ]
    description: NonEmpty
    context: ContextSnapshot = Field(default_factory=ContextSnapshot)
    attachments: list[Identifier] = Field(default_factory=list, max_length=50)
    locale: str = "zh-CN"


class Classification(Contract):
    category: Category
    topic: Topic
    priority: Priority
    reason: str


# ---------------------------------------------------------------- actions
# Agents and departments act through updates (validated, acknowledged) or through the
# `act` signal for fire-and-forget senders. `action_id` lets a resent signal be dropped.


class Action(Contract):
    actor: Actor
    action_id: Identifier | None = None


class Respond(Action):
    type: Literal["respond"] = "respond"
    message: NonEmpty


class Classify(Action):
    type: Literal["classify"] = "classify"
    category: Category
    topic: Topic
    priority: Priority
    reason: NonEmpty


class Assign(Action):
    type: Literal["assign"] = "assign"
    agent_id: Identifier


class Dispatch(Action):
    type: Literal["dispatch"] = "dispatch"
    departments: list[Identifier] = Field(min_length=1, max_length=10)
    note: NonEmpty


class PostProgress(Action):
    type: Literal["post_progress"] = "post_progress"
    department: Identifier
    note: NonEmpty
    work_order_done: bool = False


class RecordMilestone(Action):
    type: Literal["record_milestone"] = "record_milestone"
    milestone: Milestone
    note: NonEmpty


class EngagePartner(Action):
    type: Literal["engage_partner"] = "engage_partner"
    partner: Identifier
    problem: NonEmpty
    expected_by: datetime
    checkpoints: list[NonEmpty] = Field(default_factory=list, max_length=20)


class Resolve(Action):
    type: Literal["resolve"] = "resolve"
    result_kind: ResultKind
    message: NonEmpty
    root_cause: str
    compensation: str | None = None

    @field_validator("root_cause")
    @classmethod
    def _root_cause_is_tag(cls, value: str) -> str:
        return check_root_cause(value)


class Close(Action):
    """Closing condition 3: cannot be solved soon and the plan was told to the customer."""

    type: Literal["close"] = "close"
    long_term_plan: NonEmpty
    root_cause: str | None = None

    @field_validator("root_cause")
    @classmethod
    def _root_cause_is_tag(cls, value: str | None) -> str | None:
        return None if value is None else check_root_cause(value)


class RecordReviewDecision(Action):
    type: Literal["record_review_decision"] = "record_review_decision"
    decision: NonEmpty
    attendees: list[Identifier] = Field(default_factory=list)


TicketAction = Annotated[
    Respond
    | Classify
    | Assign
    | Dispatch
    | PostProgress
    | RecordMilestone
    | EngagePartner
    | Resolve
    | Close
    | RecordReviewDecision,
    Field(discriminator="type"),
]


class ActionSignal(Contract):
    """Envelope for the `act` signal: one signal name carries every action."""

    action: TicketAction


def check_root_cause(value: str) -> str:
    """Root-cause tags read `<kind>-<area>`, e.g. 產品缺陷-支付流程."""
    value = value.strip()
    parts = value.split("-")
    if len(parts) != 2 or not all(part.strip() for part in parts) or len(value) > 64:
        raise ValueError(f"root cause must look like '產品缺陷-支付流程', got {value!r}")
    return value


# ---------------------------------------------------------------- customer and partner


class CustomerReplyKind(StrEnum):
    MESSAGE = "message"
    SOLVED = "solved"
    NOT_SOLVED = "not_solved"
    CSAT = "csat"
    NPS = "nps"


class CustomerReply(Contract):
    reply_id: Identifier
    kind: CustomerReplyKind
    text: str | None = Field(default=None, max_length=4000)
    score: int | None = None

    @field_validator("score")
    @classmethod
    def _score_in_range(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= 10:
            raise ValueError("score must be CSAT 1-5 or NPS 0-10")
        return value


class PartnerCallback(Contract):
    callback_id: Identifier
    partner: Identifier
    answer: NonEmpty
    final: bool = True


# ---------------------------------------------------------------- events


class EventType(StrEnum):
    TICKET_OPENED = "ticket_opened"
    DUPLICATE_INTAKE = "duplicate_intake"
    ACKNOWLEDGED = "acknowledged"
    CLASSIFIED = "classified"
    EMERGENCY_GROUP_CONVENED = "emergency_group_convened"
    RISK_CONTROL_STARTED = "risk_control_started"
    FIRST_RESPONDED = "first_responded"
    FIRST_RESPONSE_BREACHED = "first_response_breached"
    ASSIGNED = "assigned"
    DISPATCHED = "dispatched"
    PROGRESS_POSTED = "progress_posted"
    WORK_ORDER_DONE = "work_order_done"
    PROGRESS_REMINDED = "progress_reminded"
    MILESTONE_RECORDED = "milestone_recorded"
    SLA_BREACHED = "sla_breached"
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
    CLOSED = "closed"


class DomainEvent(Contract):
    """One fact about a ticket. (ticket_id, seq) is its identity in the event store."""

    ticket_id: str
    seq: int = Field(ge=1)
    type: EventType
    occurred_at: datetime
    actor: Actor
    data: dict[str, Any] = Field(default_factory=dict)


# ---------------------------------------------------------------- effects
# Side effects the workflow decided on; the run loop turns each into one activity.


class MessageKind(StrEnum):
    SATISFACTION_SURVEY = "satisfaction_survey"
    AUTO_REPLY = "auto_reply"
    AGENT_REPLY = "agent_reply"
    ACKNOWLEDGEMENT = "acknowledgement"
    RESULT = "result"
    CONFIRMATION_REQUEST = "confirmation_request"
    PARTNER_HANDOFF = "partner_handoff"
    PARTNER_PROGRESS = "partner_progress"
    LONG_TERM_PLAN = "long_term_plan"


class CustomerMessage(Contract):
    ticket_id: str
    dedupe_key: str
    channel: Channel
    customer_id: str
    locale: str
    kind: MessageKind
    text: str
    data: dict[str, Any] = Field(default_factory=dict)


class HandoffKind(StrEnum):
    """Work handed to people outside the ticket, one outbox row per recipient."""

    WORK_ORDER = "work_order"
    PROGRESS_REMINDER = "progress_reminder"
    EMERGENCY_GROUP = "emergency_group"
    RISK_CONTROL = "risk_control"
    UPGRADE_REVIEW = "upgrade_review"
    PARTNER_CONTACT = "partner_contact"
    SUPERVISOR_STANDBY = "supervisor_standby"
    SLA_ESCALATION = "sla_escalation"


class Handoff(Contract):
    """Work for a department, a group of departments, or a partner, with the snapshot."""

    ticket_id: str
    dedupe_key: str
    kind: HandoffKind
    recipients: list[str]
    summary: str
    tag: str
    priority: Priority
    data: dict[str, Any] = Field(default_factory=dict)


class EventBatch(Contract):
    """What one drain of the run loop decided: the events, and the customer messages and
    hand-offs they describe, stored in one transaction (events and outbox rows together)."""

    ticket_id: str
    events: list[DomainEvent]
    messages: list[CustomerMessage] = Field(default_factory=list)
    handoffs: list[Handoff] = Field(default_factory=list)


class IntakeClaim(Contract):
    """Claims an idempotency key for a ticket, permanently (Temporal forgets closed ids)."""

    ticket_id: str
    idempotency_key: str
    run_id: str
    channel: Channel
    opened_at: datetime


class IntakeClaimResult(Contract):
    duplicate: bool
    ticket_id: str


# ---------------------------------------------------------------- state


class WorkOrderState(Contract):
    department: str
    opened_at: datetime
    last_progress_at: datetime | None = None
    reminded_at: datetime | None = None
    done: bool = False


class PartnerEngagement(Contract):
    partner: str
    engaged_at: datetime
    expected_by: datetime
    updates_sent: int = 0
    answered_at: datetime | None = None


class Deadlines(Contract):
    """Every pending durable timer of the ticket, as absolute instants.

    Absolute times survive continue-as-new unchanged and make "what does this ticket wait
    for" a plain read for the UI and the query.
    """

    first_response: datetime | None = None
    sla: datetime | None = None
    progress_check: datetime | None = None
    upgrade_review: datetime | None = None
    partner_update: datetime | None = None
    auto_close: datetime | None = None


class TicketState(Contract):
    ticket_id: str
    intake: Intake
    opened_at: datetime
    status: TicketStatus = TicketStatus.NEW
    classification: Classification
    tag: str
    assignee: str | None = None
    first_response_at: datetime | None = None
    first_response_breached: bool = False
    standby_requested: bool = False
    sla_milestone: Milestone
    sla_met_at: datetime | None = None
    sla_breached: bool = False
    escalated: bool = False
    last_milestone_at: datetime | None = None
    reviews_convened: int = 0
    review_decisions: list[str] = Field(default_factory=list)
    work_orders: dict[str, WorkOrderState] = Field(default_factory=dict)
    transfers: int = 0
    partners: dict[str, PartnerEngagement] = Field(default_factory=dict)
    resolved_at: datetime | None = None
    result_kind: ResultKind | None = None
    root_cause: str | None = None
    reopen_count: int = 0
    csat: int | None = None
    nps: int | None = None
    closed_at: datetime | None = None
    close_reason: CloseReason | None = None
    # Set while the closed ticket still takes the customer's CSAT / NPS.
    feedback_until: datetime | None = None
    deadlines: Deadlines = Field(default_factory=Deadlines)
    next_seq: int = 1
    pending_events: list[DomainEvent] = Field(default_factory=list)
    pending_messages: list[CustomerMessage] = Field(default_factory=list)
    pending_handoffs: list[Handoff] = Field(default_factory=list)
    last_progress_check_at: datetime | None = None
    seen_message_ids: list[str] = Field(default_factory=list)
    duplicate_of_earlier_run: bool = False
    runs: int = 1


class TicketInput(Contract):
    """What starts a ticket run: the intake, the policy in force, and for a
    continued-as-new run the state carried over."""

    ticket_id: str
    intake: Intake
    policy: ServicePolicy
    carried_state: TicketState | None = None


class TicketView(Contract):
    """What an update returns and the `state` query answers."""

    ticket_id: str
    status: TicketStatus
    classification: Classification
    tag: str
    assignee: str | None
    departments: list[str]
    open_work_orders: list[str]
    deadlines: Deadlines
    sla_breached: bool
    escalated: bool
    root_cause: str | None
    reopen_count: int
    events_recorded: int
    waiting_for: str
    # Third parties engaged (dual track, SPEC §3), in the order they were engaged.
    partners: list[PartnerEngagement] = Field(default_factory=list)


class TicketOutcome(Contract):
    ticket_id: str
    status: TicketStatus
    close_reason: CloseReason | None
    root_cause: str | None
    duplicate: bool = False
