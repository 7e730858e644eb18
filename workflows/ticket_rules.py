"""Pure rules of a ticket: which status it is in, what it waits for, and whether an
action, a rating or a partner's answer fits it now. Kept apart from the workflow so they
read (and test) as plain logic.
"""

from __future__ import annotations

from datetime import datetime

from workflows import events as ev
from workflows import primitives
from workflows.contracts import (
    Action,
    Assign,
    Classify,
    Close,
    CustomerReply,
    Dispatch,
    EngagePartner,
    PartnerCallback,
    PostProgress,
    RecordMilestone,
    RecordReviewDecision,
    Resolve,
    Respond,
    TicketState,
    WorkOrderState,
)
from workflows.policy import SHORTEST_REVIEW, ServicePolicy
from workflows.primitives import Rule, rule_for
from workflows.vocabulary import CustomerReplyKind, Milestone, TicketStatus


def rejection(
    state: TicketState, policy: ServicePolicy, action: Action, now: datetime
) -> str | None:
    """Why this action does not fit the ticket now, in words an agent understands."""
    if state.duplicate_of_earlier_run:
        return "this intake duplicates an earlier ticket"
    if state.status is TicketStatus.CLOSED:
        return f"ticket {state.ticket_id} is closed ({state.close_reason})"
    check = _ACTION_RULES.get(type(action))
    return check(state, policy, action, now) if check else None


# Fields added to actions after fingerprints were first kept, with their defaults: left
# out while at the default, so an action remembered by an older run (carried across
# continue-as-new) still matches its resend.
_ADDED_LATER: dict[str, object] = {
    "awaiting_customer": False,
    "next_checkpoint": None,
    "script_id": None,
}


def fingerprint(action: Action) -> str:
    """What an action asks, whoever sends it: the same id with the same fingerprint is a
    resend, with another it is a different action."""
    defaulted = {
        name
        for name, default in _ADDED_LATER.items()
        if name in type(action).model_fields and getattr(action, name) == default
    }
    if isinstance(action, Respond) and action.script_id is not None:
        # The API renders a script again on a retry, and its words may differ by then (a
        # paused SLA has no due date to show): a script reply is the script it names.
        defaulted.add("message")
    return primitives.fingerprint(action, action.type, defaulted)


def open_order(state: TicketState, department: str) -> WorkOrderState | None:
    order = state.work_orders.get(department)
    return order if order is not None and not order.done else None


def derive_status(state: TicketState) -> TicketStatus:
    if state.closed_at is not None:
        return TicketStatus.CLOSED
    if state.resolved_at is not None:
        return TicketStatus.RESOLVED_AWAITING_CONFIRMATION
    if any(not order.done for order in state.work_orders.values()):
        return TicketStatus.WAITING_ON_DEPARTMENT
    if state.waiting_on_customer_since is not None:
        return TicketStatus.WAITING_ON_CUSTOMER
    if any(p.answered_at is None for p in state.partners.values()):
        return TicketStatus.WAITING_ON_PARTNER
    someone_acted = (
        state.first_response_at is not None
        or state.assignee is not None
        or state.work_orders
        or state.partners
        or state.reopen_count
    )
    if someone_acted:
        return TicketStatus.IN_PROGRESS
    return TicketStatus.NEW


def waiting_for(state: TicketState) -> str:
    match derive_status(state):
        case TicketStatus.NEW:
            return "an agent's first response"
        case TicketStatus.WAITING_ON_DEPARTMENT:
            return "departments: " + ", ".join(
                sorted(d for d, o in state.work_orders.items() if not o.done)
            )
        case TicketStatus.WAITING_ON_PARTNER:
            return "partners: " + ", ".join(
                sorted(p for p, e in state.partners.items() if e.answered_at is None)
            )
        case TicketStatus.WAITING_ON_CUSTOMER:
            return "the customer's answer (SLA clock paused)"
        case TicketStatus.RESOLVED_AWAITING_CONFIRMATION:
            return "the customer's confirmation (auto-close when silent)"
        case TicketStatus.CLOSED if state.feedback_until is not None:
            return f"the customer's rating, until {state.feedback_until:%Y-%m-%d %H:%M}Z (closed)"
        case TicketStatus.CLOSED:
            return "nothing: closed"
        case _ if state.assignee is not None:
            return f"the next step of {state.assignee}, its agent"
        case _:
            return "an agent's next step (nobody is assigned)"


def opened(state: TicketState) -> ev.TicketOpened:
    """The customer's words and the problem snapshot, kept with the ticket for good, with
    the classification and promises it opened with."""
    intake, classification = state.intake, state.classification
    return ev.TicketOpened(
        channel=intake.channel,
        tier=intake.tier,
        customer_id=intake.customer_id,
        category=classification.category,
        topic=classification.topic,
        priority=classification.priority,
        tag=state.tag,
        reason=classification.reason,
        sla_due_at=state.deadlines.sla,
        first_response_due_at=state.deadlines.first_response,
        subject=intake.subject,
        description=intake.description,
        locale=intake.locale,
        attachments=list(intake.attachments),
        context=intake.context,
    )


def score(state: TicketState, reply: CustomerReply) -> ev.EventPayload:
    """A CSAT (1-5) or NPS (0-10) rating: kept on the ticket, or refused if out of range."""
    low, high = (1, 5) if reply.kind is CustomerReplyKind.CSAT else (0, 10)
    if reply.score is None or not low <= reply.score <= high:
        return ev.ActionRejected(
            action=reply.kind.value,
            reason=f"{reply.kind.value} score must be {low}-{high}, got {reply.score}",
            text=reply.text,
        )
    if reply.kind is CustomerReplyKind.CSAT:
        state.csat = reply.score
        return ev.CsatRecorded(score=reply.score, text=reply.text)
    state.nps = reply.score
    return ev.NpsRecorded(score=reply.score, text=reply.text)


def callback_refusal(state: TicketState, callback: PartnerCallback) -> str | None:
    """Why a partner's answer is kept but not acted on (None: it is acted on)."""
    engagement = state.partners.get(callback.partner)
    if state.status is TicketStatus.CLOSED:
        return f"ticket {state.ticket_id} is closed"
    if engagement is None or engagement.answered_at is not None:
        return f"no open engagement with partner {callback.partner}"
    return None


def _reject_classify(
    state: TicketState, policy: ServicePolicy, action: Classify, now: datetime
) -> str | None:
    current = state.classification
    if (current.category, current.topic, current.priority) == (
        action.category,
        action.topic,
        action.priority,
    ):
        return f"ticket is already classified as {state.tag}"
    return None


def _reject_assign(
    state: TicketState, policy: ServicePolicy, action: Assign, now: datetime
) -> str | None:
    if state.assignee == action.agent_id:
        return f"ticket is already assigned to {action.agent_id}"
    return None


def _reject_dispatch(
    state: TicketState, policy: ServicePolicy, action: Dispatch, now: datetime
) -> str | None:
    if state.status is TicketStatus.RESOLVED_AWAITING_CONFIRMATION:
        return "ticket is resolved; it returns to handling only if the customer says not solved"
    unknown = sorted(set(action.departments) - set(policy.departments))
    if unknown:
        known = ", ".join(sorted(policy.departments))
        return f"unknown department(s) {', '.join(unknown)}; known: {known}"
    if all(open_order(state, d) is not None for d in action.departments):
        return f"{', '.join(action.departments)} already hold an open work order"
    return None


def _reject_progress(
    state: TicketState, policy: ServicePolicy, action: PostProgress, now: datetime
) -> str | None:
    if open_order(state, action.department) is None:
        return f"department {action.department} holds no open work order on this ticket"
    return None


def _reject_milestone(
    state: TicketState, policy: ServicePolicy, action: RecordMilestone, now: datetime
) -> str | None:
    if state.status is TicketStatus.RESOLVED_AWAITING_CONFIRMATION:
        return "ticket is already resolved"
    if action.milestone is Milestone.RESOLVED:
        return "use the resolve action to resolve a ticket"
    return None


def _reject_engage_partner(
    state: TicketState, policy: ServicePolicy, action: EngagePartner, now: datetime
) -> str | None:
    if state.status is TicketStatus.RESOLVED_AWAITING_CONFIRMATION:
        return "ticket is resolved; no partner can be engaged now"
    engagement = state.partners.get(action.partner)
    if engagement is not None and engagement.answered_at is None:
        return f"partner {action.partner} is already engaged and has not answered yet"
    if action.expected_by <= now:
        return "expected_by must be in the future"
    return None


def _reject_resolve(
    state: TicketState, policy: ServicePolicy, action: Resolve, now: datetime
) -> str | None:
    if state.status is TicketStatus.RESOLVED_AWAITING_CONFIRMATION:
        return "ticket is already resolved and waits for the customer's confirmation"
    open_orders = sorted(d for d, o in state.work_orders.items() if not o.done)
    if open_orders:
        return (
            f"open work orders at {', '.join(open_orders)}: each department must post "
            "progress with work_order_done before the ticket is resolved"
        )
    return None


def _reject_close(
    state: TicketState, policy: ServicePolicy, action: Close, now: datetime
) -> str | None:
    if action.root_cause is None and state.root_cause is None:
        return "closing needs a root-cause tag such as 產品缺陷-支付流程"
    return None


def _reject_review_decision(
    state: TicketState, policy: ServicePolicy, action: RecordReviewDecision, now: datetime
) -> str | None:
    if state.reviews_convened <= len(state.review_decisions):
        return "no upgrade review is waiting for a decision"
    checkpoint = action.next_checkpoint
    # Not sooner than SHORTEST_REVIEW: the board's next look is a timer that repeats.
    if checkpoint is not None and not SHORTEST_REVIEW <= checkpoint <= policy.review_checkpoint_max:
        return (
            f"next_checkpoint must be from {SHORTEST_REVIEW.total_seconds() / 3600:g} h to "
            f"{policy.review_checkpoint_max.total_seconds() / 3600:g} h away"
        )
    return None


def _reject_respond(
    state: TicketState, policy: ServicePolicy, action: Respond, now: datetime
) -> str | None:
    if action.message is None:
        return "a script reply is rendered by the API (POST …/responses with script_id)"
    if action.awaiting_customer and state.resolved_at is not None:
        return "the ticket is resolved: it already waits for the customer's confirmation"
    return None


_ACTION_RULES: dict[type[Action], Rule[TicketState, ServicePolicy]] = {
    kind: rule
    for kind, rule in (
        rule_for(Respond, _reject_respond),
        rule_for(Classify, _reject_classify),
        rule_for(Assign, _reject_assign),
        rule_for(Dispatch, _reject_dispatch),
        rule_for(PostProgress, _reject_progress),
        rule_for(RecordMilestone, _reject_milestone),
        rule_for(EngagePartner, _reject_engage_partner),
        rule_for(Resolve, _reject_resolve),
        rule_for(Close, _reject_close),
        rule_for(RecordReviewDecision, _reject_review_decision),
    )
}
