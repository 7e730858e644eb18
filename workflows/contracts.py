"""The ticket's contracts: plain pydantic data passed end to end through Temporal.

Every message has one input model, so fields can be added later without breaking
callers. Nothing here reads a clock or generates ids: the workflow passes
`workflow.now()` explicitly, which keeps these models safe inside the sandbox.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, TypeAlias, get_args

from pydantic import (
    AwareDatetime,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    StringConstraints,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)

from workflows.events import Audience, DomainEvent
from workflows.policy import (
    ServicePolicy,
    check_time_zone,
    reader_locale,
    region_time_zone,
)
from workflows.primitives import (
    Actor,
    Cleaned,
    ContextSnapshot,
    Contract,
    Identifier,
    NonEmpty,
    Subject,
    Text,
)
from workflows.sla_clock import SlaClock
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

# ---------------------------------------------------------------- intake


class Intake(Contract):
    idempotency_key: Identifier
    channel: Channel
    customer_id: Identifier
    tier: Tier = Tier.STANDARD
    subject: Subject
    description: NonEmpty
    context: ContextSnapshot = Field(default_factory=ContextSnapshot)
    attachments: list[Identifier] = Field(default_factory=list, max_length=50)
    # The customer's locale (BCP 47). None: the words' script decides when the ticket
    # opens (`for_reader`), so a message written in English is answered in English.
    locale: str | None = None
    # The customer's IANA zone, if the channel knows it: times in messages use it. None:
    # the locale's region decides when the ticket opens (zh-TW: Asia/Taipei), else the
    # policy's zone.
    time_zone: str | None = None

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else check_time_zone(value)

    def for_reader(self, policy: ServicePolicy) -> Intake:
        """The intake with the language and zone its customer reads in settled by the
        policy's rules, where the intake did not say them."""
        locale = reader_locale(policy, self.locale, f"{self.subject}\n{self.description}")
        zone = self.time_zone or region_time_zone(policy, locale)
        return self.model_copy(update={"locale": locale, "time_zone": zone})


class Classification(Contract):
    category: Category
    topic: Topic
    priority: Priority
    reason: str


class TextToClassify(Contract):
    """What the learned classifier reads at intake (activities.classifier)."""

    subject: str
    description: str
    locale: str | None = None


class ModelClassification(Contract):
    """The learned classifier's answer: a value per field, how sure it is of each, and
    the model that said so (recorded on the `classified` event it leads to)."""

    category: Category
    topic: Topic
    priority: Priority
    confidence: dict[str, float]
    model_version: str


# ---------------------------------------------------------------- actions
# One class per action, and nothing else to write: its update on the ticket, its HTTP
# route, its CLI command and its line in docs/actions.md all come from this class (its
# name, docstring and the ClassVars below). The ticket handles it in `_on_<type>` and
# `workflows.ticket_rules` says when it does not fit.
#
# Agents and departments act through updates (validated, acknowledged) or through the
# `act` signal for fire-and-forget senders. `action_id` makes a resent action count once.


class Action(Contract):
    # POST /v1/tickets/{ticket_id}/<route>
    route: ClassVar[str]
    # ticketflow ticket act <ticket_id> <command>
    command: ClassVar[str]
    # A department key may send it, for its own department (the `department` field).
    for_departments: ClassVar[bool] = False

    type: str  # each action's own Literal: the discriminator, and its update's name
    actor: Actor
    action_id: Identifier | None = None


class Respond(Action):
    """An agent's reply to the customer; the first one stops the first-response clock."""

    route = "responses"
    command = "respond"
    type: Literal["respond"] = "respond"
    # The words sent. With `script_id` and no message, the API renders the script in the
    # customer's locale with the ticket's data.
    message: NonEmpty | None = None
    # The reply asks the customer something: the SLA clock pauses until they answer.
    awaiting_customer: bool = False
    # The knowledge base's reply script it came from, recorded on the event.
    script_id: Identifier | None = None

    @model_validator(mode="after")
    def _words(self) -> Respond:
        if self.message is None and self.script_id is None:
            raise ValueError("a reply needs a message, or a script_id to render one from")
        return self


class AddNote(Action):
    """An internal note on the ticket, for staff only: the customer never sees it."""

    route = "notes"
    command = "note"
    type: Literal["add_note"] = "add_note"
    text: NonEmpty


class Classify(Action):
    """Override the automatic classification; the SLA follows the new priority."""

    route = "classification"
    command = "classify"
    type: Literal["classify"] = "classify"
    category: Category
    topic: Topic
    priority: Priority
    reason: NonEmpty


class Assign(Action):
    """Give the ticket to an agent."""

    route = "assignment"
    command = "assign"
    type: Literal["assign"] = "assign"
    agent_id: Identifier


class Dispatch(Action):
    """Open work orders at departments, with the problem snapshot and attachments."""

    route = "dispatches"
    command = "dispatch"
    type: Literal["dispatch"] = "dispatch"
    departments: list[Identifier] = Field(min_length=1, max_length=10)
    note: NonEmpty


class PostProgress(Action):
    """A department's daily progress on its work order (`work_order_done` closes it)."""

    route = "progress"
    command = "progress"
    for_departments = True
    type: Literal["post_progress"] = "post_progress"
    department: Identifier
    note: NonEmpty
    work_order_done: bool = False


class RecordMilestone(Action):
    """A breakthrough: meets the SLA of its priority and resets the upgrade-review clock."""

    route = "milestones"
    command = "milestone"
    type: Literal["record_milestone"] = "record_milestone"
    milestone: Milestone
    note: NonEmpty


class EngagePartner(Action):
    """Hand the problem to a third party; the customer hears from us every 6 h until the
    partner calls back."""

    route = "partner-engagements"
    command = "engage-partner"
    type: Literal["engage_partner"] = "engage_partner"
    partner: Identifier
    problem: NonEmpty
    expected_by: AwareDatetime = Field(
        description="With a time zone, e.g. 2026-05-01T10:00:00+08:00"
    )
    checkpoints: list[NonEmpty] = Field(default_factory=list, max_length=20)


class Resolve(Action):
    """Send the result and ask the customer to confirm; closes by itself after 72 h."""

    route = "resolution"
    command = "resolve"
    type: Literal["resolve"] = "resolve"
    result_kind: ResultKind
    message: NonEmpty
    root_cause: Annotated[str, Cleaned] = Field(
        description="`<kind>-<area>`, e.g. 產品缺陷-支付流程"
    )
    compensation: Annotated[str, StringConstraints(max_length=1000), Cleaned] | None = None

    @field_validator("root_cause")
    @classmethod
    def _root_cause_is_tag(cls, value: str) -> str:
        return check_root_cause(value)


class Close(Action):
    """Close a ticket that cannot be solved soon, once the long-term plan was told
    (closing condition 3)."""

    route = "closure"
    command = "close"
    type: Literal["close"] = "close"
    long_term_plan: NonEmpty
    root_cause: Annotated[str, Cleaned] | None = Field(
        default=None, description="`<kind>-<area>`, e.g. 產品缺陷-支付流程"
    )

    @field_validator("root_cause")
    @classmethod
    def _root_cause_is_tag(cls, value: str | None) -> str | None:
        return None if value is None else check_root_cause(value)


class RecordReviewDecision(Action):
    """The upgrade review's decision, recorded on the ticket."""

    route = "review-decisions"
    command = "review-decision"
    type: Literal["record_review_decision"] = "record_review_decision"
    decision: NonEmpty
    attendees: list[Identifier] = Field(default_factory=list, max_length=50)
    # When the board looks again if no milestone comes first (default: the policy's
    # upgrade_review_after). Reviews stop once the ticket is resolved.
    next_checkpoint: timedelta | None = None


TicketAction = Annotated[
    Respond
    | AddNote
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

# Every action, in the order of the union above: what routes, commands and docs iterate.
ACTIONS: tuple[type[Action], ...] = get_args(get_args(TicketAction)[0])


def action_name(action: type[Action]) -> str:
    """The action's update name on the ticket, e.g. `post_progress`."""
    name = action.model_fields["type"].default
    assert isinstance(name, str)
    return name


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


class CustomerReply(Contract):
    reply_id: Identifier
    kind: CustomerReplyKind
    text: Text | None = None
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
    # A raised priority's new promise: `within`, due `until`.
    PROMISE_CHANGED = "promise_changed"


class MessageParams(Contract):
    """What a message to the customer says, as data. The words are the templates' of the
    customer's locale (activities/templates/messages.toml), rendered at delivery, so no
    sentence lives in workflow code and fixing one never touches determinism."""

    # A person's own words: an agent's reply, a result, a long-term plan.
    text: str | None = None
    result_kind: ResultKind | None = None
    compensation: str | None = None
    # Instants, rendered in the customer's zone (or the policy's) and language.
    expect_progress_by: datetime | None = None
    until: datetime | None = None
    # Durations of the promise, unscaled, rendered in words ("6 小時", "6 hours").
    within: timedelta | None = None
    every: timedelta | None = None
    number: int | None = None


class CustomerMessage(Contract):
    ticket_id: str
    # The outbox row's identity: unique per message, the same on every retry.
    dedupe_key: str
    # The event that sent it (None: queued before messages named their event).
    event_seq: int | None = None
    channel: Channel
    # A live channel (chat, hotline) gets the wording for a conversation going on now.
    live: bool = False
    customer_id: str
    locale: str
    time_zone: str | None = None
    kind: MessageKind
    params: MessageParams = Field(default_factory=MessageParams)
    # Before templates: the English sentence the workflow wrote (rows still undelivered).
    text: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, value: Any) -> Any:
        # Rows written before templates carried a free-form `data` beside `text`.
        if isinstance(value, dict) and "data" in value:
            value = {key: item for key, item in value.items() if key != "data"}
        return value


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
    SLA_WARNING = "sla_warning"
    # The weekly review's follow-up actions: the owner reminded, the lead told when late.
    REVIEW_REMINDER = "review_reminder"
    REVIEW_ESCALATION = "review_escalation"
    DELIVERY_FAILED = "delivery_failed"


# What an outbox row carries, as the relay reports a failed one: a hand-off's kind, or a
# customer message's (the row's `customer_message:` prefix left out). The two share no
# value, and every value either ever had is still theirs, so any recorded one parses.
OutboxKind: TypeAlias = HandoffKind | MessageKind


class DeliveryFailure(Contract):
    """A message or hand-off the relay gave up on: the ticket records it and hands the
    ticket to a person."""

    dedupe_key: str
    kind: OutboxKind
    destination: str
    attempts: int
    error: str


class RelayRound(Contract):
    """What one `deliver_due` activity (the outbox relay's) did before it handed back to
    its workflow (workflows/relay.py)."""

    delivered: int = 0
    retried: int = 0
    failed: int = 0


class SurgeFacts(Contract):
    """A category or topic rising (SPEC §5's warning indicator): the emergency group is
    convened to investigate it."""

    dimension: str  # "category" or "topic"
    value: str
    last_24h: int
    day_before: int
    week_before: int
    # The categories whose rise this topic's explains: one investigation for them all.
    explains: list[str] = Field(default_factory=list)


class HandoffFacts(Contract):
    """What a hand-off tells its recipients, as data. The words are the staff templates'
    of the company's locale (activities/templates/handoffs.toml), rendered at delivery
    with times in the company's zone, so no sentence lives in workflow code. Only what
    the ticket computed goes here: a person's words stay in `Handoff.summary`."""

    # The instant the recipient must act by: the SLA's due time (warnings), the next
    # daily check (progress reminders), the partner's expected answer, a follow-up's due.
    due_at: datetime | None = None
    # The promise at stake, unscaled: how long, and what must be reached by then. Also
    # the first response missed (standby) and the time without a breakthrough (review).
    within: timedelta | None = None
    milestone: Milestone | None = None
    # How much of the SLA's time is used (warnings), 0-1.
    share: float | None = None
    # Which one: the escalation step, the upgrade review's number, a follow-up's chase
    # (1: due soon, 2: due).
    number: int | None = None
    # A delivery given up on: what it was, where it went, how often it was tried, and
    # the destination's answer.
    failed_kind: OutboxKind | None = None
    destination: str | None = None
    attempts: int | None = None
    error: str | None = None
    # An emergency group convened for a surge rather than for one ticket.
    surge: SurgeFacts | None = None


class HandoffData(Contract):
    """What a hand-off carries beside its facts, by kind:
    - `work_order`, `partner_contact`: the problem, as the customer gave it: the context
      `snapshot` (without the IP), `attachments` and `description`;
    - `partner_contact`: the `checkpoints` the partner is asked about;
    - `emergency_group` convened for a surge: a `sample` of its tickets;
    - `review_reminder`, `review_escalation`: which `follow_up` of the review, on which
      ticket (`ticket_id`);
    - the other kinds: nothing.
    It was a free-form dict, and outbox rows, webhook bodies and histories hold it as
    one: it is written with only the keys a hand-off was given, as the dict was, and keys
    of older rows no kind writes any more (`due_at`, `expected_by`, `number`, from before
    `HandoffFacts`) are kept as they came."""

    model_config = ConfigDict(extra="allow")

    snapshot: ContextSnapshot | None = None
    attachments: list[str] | None = None
    description: str | None = None
    checkpoints: list[str] | None = None
    sample: list[str] | None = None
    follow_up: int | None = None
    ticket_id: str | None = None

    @field_serializer("snapshot", mode="wrap")
    def _without_ip(
        self, snapshot: ContextSnapshot | None, handler: SerializerFunctionWrapHandler
    ) -> Any:
        written = handler(snapshot)
        if isinstance(written, dict):
            written.pop("ip", None)  # personal: departments and partners never get it
        return written

    @model_serializer(mode="wrap")
    def _as_given(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        written: dict[str, Any] = handler(self)
        given = self.model_fields_set | set(self.model_extra or {})
        return {key: value for key, value in written.items() if key in given}


class Handoff(Contract):
    """Work for a department, a group of departments, or a partner, with the snapshot."""

    ticket_id: str
    dedupe_key: str
    event_seq: int | None = None
    kind: HandoffKind
    recipients: list[str]
    # A person's words the hand-off carries: a work order's note, the problem put to a
    # partner, a follow-up's description. Hand-offs queued before staff templates (no
    # `facts`) carry their whole English sentence here.
    summary: str | None = None
    tag: str
    priority: Priority
    data: HandoffData = Field(default_factory=HandoffData)
    # None: queued before staff templates (or by a workflow that still writes its own
    # sentence): `summary` is said as it is.
    facts: HandoffFacts | None = None


class EventBatch(Contract):
    """What one drain of the run loop decided: the events, and the customer messages and
    hand-offs they describe, stored in one transaction (events and outbox rows together)."""

    ticket_id: str
    events: list[DomainEvent]
    messages: list[CustomerMessage] = Field(default_factory=list)
    handoffs: list[Handoff] = Field(default_factory=list)


class HandoffBatch(Contract):
    """Hand-offs of a workflow that keeps no record of its own (a surge investigation):
    the same outbox rows as a ticket's, delivered by the same relay, and reported to
    `owner_id` (the workflow's id) when they fail."""

    owner_id: str
    handoffs: list[Handoff]


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
    # Before a breach: the next warning (policy.sla_warnings). After it: the next step of
    # the escalation ladder.
    sla_warning: datetime | None = None
    escalation: datetime | None = None


class LastMessage(Contract):
    """The latest words on the ticket, from anyone: what an agent looks at first."""

    at: datetime
    actor: Actor
    audience: Audience
    text: str


class TicketState(Contract):
    ticket_id: str
    intake: Intake
    opened_at: datetime
    status: TicketStatus = TicketStatus.NEW
    classification: Classification
    tag: str
    assignee: str | None = None
    first_response_at: datetime | None = None
    # No longer written, and never read (the `first_response_breached` event says it):
    # kept so that states carried over from earlier runs (continue-as-new, extra fields
    # forbidden) still decode. This build leaves them False.
    first_response_breached: bool = False
    standby_requested: bool = False
    sla_milestone: Milestone
    sla_met_at: datetime | None = None
    sla_breached: bool = False
    escalated: bool = False
    # No longer written, and never read (the `milestone_recorded` events say it): kept
    # so that carried-over states still decode, like the two above.
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
    # Action ids applied, with what each named (workflows.ticket_rules.fingerprint).
    seen_actions: dict[str, str] = Field(default_factory=dict)
    duplicate_of_earlier_run: bool = False
    runs: int = 1
    # Numbers every outbox row the ticket queues (its dedupe key), so no two share one.
    next_effect: int = 1
    last_message: LastMessage | None = None
    # The SLA promise's clock (workflows.sla_clock): from when it counts, on which clock, and its
    # pauses. Set at opening; optional because states of runs opened before the
    # "sla-calendar" patch (carried over, or returned by the `state` query) have none.
    sla_clock: SlaClock | None = None
    sla_warnings_sent: int = 0
    sla_breached_at: datetime | None = None
    escalation_level: int = 0
    # Set by a reply that asks the customer something; their answer clears it.
    waiting_on_customer_since: datetime | None = None


class TicketInput(Contract):
    """What starts a ticket run: the intake, the policy in force, and for a
    continued-as-new run the state carried over."""

    ticket_id: str
    intake: Intake
    policy: ServicePolicy
    carried_state: TicketState | None = None


class TicketView(Contract):
    """What an update returns and the `view` query answers (the `state` query answers the
    whole TicketState)."""

    ticket_id: str
    status: TicketStatus
    # Who asked what, and through which channel (the intake).
    subject: str
    description: str
    customer_id: str
    tier: Tier
    channel: Channel
    locale: str
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
    last_message: LastMessage | None = None
    # The SLA clock: paused since when (None: running), and how long it has been paused.
    sla_paused_since: datetime | None = None
    sla_paused_seconds: float = 0.0
    # The earliest promise still to keep: first_response, sla_warning, sla or escalation
    # (the routine timers are in `deadlines`). None while the SLA is paused or met.
    next_deadline: str | None = None
    next_deadline_at: datetime | None = None


class TicketOutcome(Contract):
    ticket_id: str
    status: TicketStatus
    close_reason: CloseReason | None
    root_cause: str | None
    duplicate: bool = False
