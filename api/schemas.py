"""Request and response bodies of the HTTP API.

They mirror `workflows.contracts` but are the API's own: the caller never sends an
`actor` (the API key says who acts) nor a `type` (the route says which action), and the
gateway, not the caller, fills in the IP and user agent of the intake's snapshot.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    create_model,
    field_validator,
    model_validator,
)

from activities.projection import TicketRow
from workflows.contracts import (
    ACTIONS,
    Action,
    Classification,
    Deadlines,
    TicketView,
)
from workflows.events import EventPayload
from workflows.policy import check_time_zone
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
from workflows.review_contracts import REVIEW_ACTIONS, ReviewAction
from workflows.vocabulary import Channel, CustomerReplyKind, TicketStatus, Tier

# The workflow id `ticket_id_for` derives from an idempotency key.
TICKET_ID = re.compile(r"^ticket-[0-9a-f]{24}$")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- intake


class IntakeContext(Body):
    """The problem snapshot the channel captured. The caller's IP and user agent are
    taken from the request by the gateway, never from the body."""

    device_model: Annotated[str, StringConstraints(max_length=200), Cleaned] | None = None
    os_version: Annotated[str, StringConstraints(max_length=100), Cleaned] | None = None
    app_version: Annotated[str, StringConstraints(max_length=100), Cleaned] | None = None
    operation_path: list[Annotated[str, StringConstraints(max_length=200), Cleaned]] = Field(
        default_factory=list, max_length=50
    )
    occurred_at: datetime | None = None
    region: Annotated[str, StringConstraints(max_length=100), Cleaned] | None = None
    affected_users: int | None = Field(default=None, ge=0, le=10**9)


class IntakeRequest(Body):
    idempotency_key: Identifier | None = Field(
        default=None,
        description="Or the Idempotency-Key header: the same key always yields the same ticket.",
    )
    channel: Channel
    customer_id: Identifier = Field(description="Opaque account id, never a name or phone.")
    tier: Tier = Tier.STANDARD
    subject: Subject
    description: NonEmpty
    context: IntakeContext = Field(default_factory=IntakeContext)
    attachments: list[Identifier] = Field(default_factory=list, max_length=50)
    locale: (
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")] | None
    ) = Field(
        default=None,
        description="The customer's locale, e.g. zh-TW (default: the script of the words "
        "decides; a message in Latin script is answered in English).",
    )

    time_zone: str | None = Field(
        default=None,
        description="The customer's IANA time zone, e.g. Asia/Taipei: times in messages use it "
        "(default: the locale's region's, zh-TW: Asia/Taipei, else the policy's).",
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else check_time_zone(value)

    def snapshot(self, ip: str | None, user_agent: str | None) -> ContextSnapshot:
        return ContextSnapshot(**self.context.model_dump(), ip=ip, user_agent=user_agent)


class TicketOpened(BaseModel):
    ticket_id: str
    created: bool = Field(description="false: this idempotency key had opened the ticket before")
    status: TicketStatus
    classification: Classification
    tags: list[str]
    deadlines: dict[str, datetime] = Field(description="Every deadline now running, by name.")


def running_deadlines(deadlines: Deadlines) -> dict[str, datetime]:
    return {name: due for name, due in deadlines if due is not None}


def opened(view: TicketView, created: bool) -> TicketOpened:
    return TicketOpened(
        ticket_id=view.ticket_id,
        created=created,
        status=view.status,
        classification=view.classification,
        tags=[view.tag],
        deadlines=running_deadlines(view.deadlines),
    )


def opened_from_read_model(row: TicketRow) -> TicketOpened:
    """An earlier ticket whose workflow Temporal no longer retains (closed long ago)."""
    return TicketOpened(
        ticket_id=row.ticket_id,
        created=False,
        status=TicketStatus(row.status),
        # Every stored ticket was classified by its `ticket_opened` event.
        classification=Classification.model_validate(
            {
                "category": row.category,
                "topic": row.topic,
                "priority": row.priority,
                "reason": "from the tickets read model: the workflow is no longer retained",
            }
        ),
        tags=[row.tag] if row.tag else [],
        deadlines={},
    )


# ---------------------------------------------------------------- actions


class ActionRequest(Body):
    """What every action's body carries besides the action's own fields."""

    action_id: Identifier | None = Field(
        default=None,
        description="Send the action again with the same id (after a timeout or a 503): it is "
        "applied once. Without one, the API makes one and returns it (`Action-Id` header).",
    )
    actor_id: Identifier | None = Field(
        default=None,
        description="Staff id of the person acting, for consoles used by many staff (agent "
        "and operator keys only); defaults to the API key's name.",
    )


_NOT_IN_BODY = {"actor", "type", "action_id"}
C = TypeVar("C", bound=Contract)


def action_request(action: type[Contract]) -> type[ActionRequest]:
    """The body of an action's route: the contract's fields, less what the API fills in
    (the key says who acts, the route which action). The contract's own validators run
    when the body becomes the action (`to_action`)."""
    fields: dict[str, Any] = {
        name: (field.annotation, field)
        for name, field in action.model_fields.items()
        if name not in _NOT_IN_BODY
    }
    model: type[ActionRequest] = create_model(
        f"{action.__name__}Request", __base__=ActionRequest, __doc__=action.__doc__, **fields
    )
    return model


def to_action(action: type[C], body: ActionRequest, actor: Actor, action_id: str) -> C:
    fields = body.model_dump(exclude={"actor_id", "action_id"})
    return action.model_validate({**fields, "actor": actor, "action_id": action_id})


ACTION_REQUESTS: dict[type[Action], type[ActionRequest]] = {
    action: action_request(action) for action in ACTIONS
}
# The review leads' actions (workflows.review_contracts.REVIEW_ACTIONS), the same way.
REVIEW_REQUESTS: dict[type[ReviewAction], type[ActionRequest]] = {
    action: action_request(action) for action in REVIEW_ACTIONS
}


# ---------------------------------------------------------------- customers and partners


class CustomerReplyRequest(Body):
    reply_id: Identifier = Field(description="The channel's message id: a resend is applied once.")
    kind: CustomerReplyKind
    text: Text | None = None
    score: int | None = Field(default=None, description="CSAT 1-5 or NPS 0-10")

    @field_validator("score")
    @classmethod
    def _score_range(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= 10:
            raise ValueError("score must be CSAT 1-5 or NPS 0-10")
        return value

    @model_validator(mode="after")
    def _score_fits_kind(self) -> CustomerReplyRequest:
        ranges = {CustomerReplyKind.CSAT: (1, 5), CustomerReplyKind.NPS: (0, 10)}
        if self.kind in ranges:
            low, high = ranges[self.kind]
            if self.score is None or not low <= self.score <= high:
                raise ValueError(f"a {self.kind.value} reply needs a score from {low} to {high}")
        return self


class PartnerCallbackRequest(Body):
    ticket_id: Identifier
    callback_id: Identifier = Field(description="The partner's id of this answer: sent once.")
    answer: NonEmpty
    final: bool = Field(default=True, description="false: an interim update, more will come")


class Accepted(BaseModel):
    """A customer reply or partner callback was handed to the ticket (applied in order)."""

    ticket_id: str
    accepted: bool = True


# ---------------------------------------------------------------- reads


class EventOut(BaseModel):
    seq: int
    type: str
    occurred_at: datetime
    actor_id: str
    actor_role: str
    data: EventPayload = Field(description="One model per event type (`data.type`).")


class EventPage(BaseModel):
    ticket_id: str
    events: list[EventOut]
    next_after_seq: int | None = Field(
        description="Pass as after_seq for the next page; null when this is the last page."
    )
    erased: bool = Field(
        default=False,
        description="The customer's data was erased: what they said reads [erased] or null.",
    )


class TicketSummary(BaseModel):
    """A row of the `tickets` read model."""

    ticket_id: str
    status: str
    priority: str | None
    category: str | None
    topic: str | None
    channel: str | None
    tier: str | None
    tag: str | None
    assignee: str | None
    departments: list[str]
    transfers: int
    sla_due_at: datetime | None
    sla_breached: bool
    escalated: bool
    root_cause: str | None
    reopen_count: int
    opened_at: datetime | None
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None
    subject: str | None
    due_at: datetime | None = Field(description="The SLA instant still to keep, if any.")
    csat: int | None
    nps: int | None
    sla_paused_since: datetime | None = Field(
        description="The SLA clock is paused (waiting on the customer) since then."
    )
    sla_paused_seconds: float = Field(description="Paused in all, on the SLA's clock.")
    first_response_due_at: datetime | None = Field(
        default=None, description="The first reply still owed, by then."
    )
    sla_warned_at: datetime | None = Field(
        default=None, description="The SLA still to keep was first warned of then."
    )
    updated_at: datetime
    erased: bool = Field(
        default=False, description="The customer's data was erased (`GET` the ticket: 410)."
    )


class TicketPage(BaseModel):
    items: list[TicketSummary]
    next_cursor: str | None = Field(description="Pass as cursor for the next page.")


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
