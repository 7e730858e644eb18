"""The names people read for the vocabulary's values, the queue's views, the deadlines'
kinds and the action forms' fields: English source strings, marked for the catalogues
(`N_`), translated when a page is drawn. Values without a label read as themselves."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

from workflows.contracts import ACTIONS, action_name
from workflows.vocabulary import (
    Category,
    Channel,
    Milestone,
    Priority,
    ResultKind,
    TicketStatus,
    Tier,
    Topic,
)


def N_(message: str) -> str:
    """Marks a string for the catalogues; translated where it is shown."""
    return message


LABELS: dict[str, str] = {
    # Categories and topics (SPEC §2).
    "technical_fault": N_("Technical fault"),
    "account_security": N_("Account security"),
    "business_inquiry": N_("Business inquiry"),
    "complaint_suggestion": N_("Complaint or suggestion"),
    "payment": N_("Payment"),
    "login": N_("Login"),
    "order": N_("Order"),
    "refund": N_("Refund"),
    "withdrawal": N_("Withdrawal"),
    "membership": N_("Membership"),
    "verification_code": N_("Verification code"),
    "other": N_("Other"),
    # Statuses.
    "new": N_("New"),
    "in_progress": N_("In progress"),
    "waiting_on_department": N_("Waiting on a department"),
    "waiting_on_partner": N_("Waiting on a partner"),
    "waiting_on_customer": N_("Waiting on the customer"),
    "resolved_awaiting_confirmation": N_("Resolved, awaiting confirmation"),
    "closed": N_("Closed"),
    # Channels and tiers.
    "app_chat": N_("App chat"),
    "web_chat": N_("Web chat"),
    "hotline": N_("Hotline"),
    "email": N_("E-mail"),
    "app_feedback": N_("App feedback"),
    "web_form": N_("Web form"),
    "social_dm": N_("Social media message"),
    "vip": N_("VIP"),
    "standard": N_("Standard"),
    # Milestones and results.
    "temporary_fix": N_("Temporary fix"),
    "cause_located": N_("Cause located"),
    "direction_given": N_("Direction given"),
    "resolved": N_("Resolved"),
    "technical": N_("Technical"),
    "compensation": N_("Compensation"),
    "suggestion": N_("Suggestion"),
    # Deadlines (TicketView.next_deadline and the queue's countdown).
    "first_response": N_("First reply"),
    "sla": N_("SLA"),
    "sla_warning": N_("SLA warning"),
    "escalation": N_("Next escalation"),
    "progress_check": N_("Departments' progress"),
    "upgrade_review": N_("Upgrade review"),
    "partner_update": N_("Partner update"),
    "auto_close": N_("Auto-close"),
    # Warnings and escalations sent (the ticket page's header).
    "sla_warned": N_("SLA warning sent"),
    "sla_breached": N_("SLA breached: escalated"),
    "sla_escalated": N_("Escalated"),
    "first_response_breached": N_("First reply late"),
    "upgrade_review_convened": N_("Upgrade review convened"),
    # Actions (the table's update names).
    "respond": N_("Reply"),
    "add_note": N_("Internal note"),
    "classify": N_("Classify"),
    "assign": N_("Assign"),
    "dispatch": N_("Dispatch to departments"),
    "post_progress": N_("Post progress"),
    "record_milestone": N_("Record a milestone"),
    "engage_partner": N_("Engage a partner"),
    "resolve": N_("Resolve"),
    "close": N_("Close the ticket"),
    "record_review_decision": N_("Record the review's decision"),
    # The actions' fields.
    "message": N_("Message"),
    "awaiting_customer": N_("Ask the customer (pauses the SLA)"),
    "script_id": N_("Script"),
    "text": N_("Note"),
    "category": N_("Category"),
    "topic": N_("Topic"),
    "priority": N_("Priority"),
    "reason": N_("Reason"),
    "agent_id": N_("Agent"),
    "departments": N_("Departments"),
    "note": N_("Note"),
    "department": N_("Department"),
    "channel": N_("Channel"),
    "tier": N_("Tier"),
    "work_order_done": N_("Work order done"),
    "milestone": N_("Milestone"),
    "partner": N_("Partner"),
    "problem": N_("Problem"),
    "expected_by": N_("Expected by"),
    "checkpoints": N_("Checkpoints (one per line)"),
    "result_kind": N_("Kind of result"),
    "root_cause": N_("Root cause (kind-area)"),
    "long_term_plan": N_("Long-term plan"),
    "decision": N_("Decision"),
    "attendees": N_("Attendees (one per line)"),
    "next_checkpoint": N_("Next checkpoint (e.g. 24h)"),
}

# What each action's form is for, as staff read it above the form (the docstrings of the
# table of actions speak to developers, in the API's reference).
HELP: dict[str, str] = {
    "respond": N_("Reply to the customer. The first reply stops the first-response clock."),
    "add_note": N_("A note for staff only: the customer never sees it."),
    "classify": N_("Change the category, topic or priority; the SLA follows the new priority."),
    "assign": N_("Give the ticket to an agent."),
    "dispatch": N_("Open work orders at departments, with the customer's problem snapshot."),
    "post_progress": N_(
        "A department's progress on its work order; mark it done to close the order."
    ),
    "record_milestone": N_(
        "A breakthrough: meets this priority's SLA and resets the upgrade-review clock."
    ),
    "engage_partner": N_(
        "Hand the problem to a partner; the customer is kept informed until the partner answers."
    ),
    "resolve": N_(
        "Send the result and ask the customer to confirm; the ticket closes by itself if they "
        "stay silent."
    ),
    "close": N_("Close a ticket that cannot be solved soon, once the long-term plan was told."),
    "record_review_decision": N_("Record the upgrade review's decision."),
}

# The roles that sign in, as the header names them.
ROLES: dict[str, str] = {
    "agent": N_("Agent"),
    "operator": N_("Supervisor"),
    "department": N_("Department"),
}

# Every value of these is shown somewhere in the workspace.
SHOWN: tuple[type[Enum], ...] = (
    Category,
    Topic,
    TicketStatus,
    Channel,
    Tier,
    Milestone,
    ResultKind,
)


def unlabelled() -> list[str]:
    """Values and actions the workspace would show untranslated, or actions without the
    words above their form (a test keeps it empty)."""
    values: Iterable[str] = [member.value for kind in SHOWN for member in kind]
    names = [action_name(action) for action in ACTIONS]
    priorities = {member.value for member in Priority}  # E, A, B, C read the same anywhere
    missing = {name for name in [*values, *names] if name not in LABELS} - priorities
    return sorted(missing | {name for name in names if name not in HELP})
