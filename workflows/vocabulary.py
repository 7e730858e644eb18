"""The words of the service desk: channels, tiers, categories, topics, priorities, states."""

from enum import StrEnum


class Channel(StrEnum):
    APP_CHAT = "app_chat"
    WEB_CHAT = "web_chat"
    HOTLINE = "hotline"
    EMAIL = "email"
    APP_FEEDBACK = "app_feedback"
    WEB_FORM = "web_form"
    SOCIAL_DM = "social_dm"


class Tier(StrEnum):
    VIP = "vip"
    STANDARD = "standard"


class Category(StrEnum):
    TECHNICAL_FAULT = "technical_fault"
    ACCOUNT_SECURITY = "account_security"
    BUSINESS_INQUIRY = "business_inquiry"
    COMPLAINT_SUGGESTION = "complaint_suggestion"


class Topic(StrEnum):
    PAYMENT = "payment"
    LOGIN = "login"
    ORDER = "order"
    REFUND = "refund"
    WITHDRAWAL = "withdrawal"
    MEMBERSHIP = "membership"
    VERIFICATION_CODE = "verification_code"
    OTHER = "other"


class Priority(StrEnum):
    """E is the most severe; the letters are the ones the service desk already uses."""

    E = "E"
    A = "A"
    B = "B"
    C = "C"


class Milestone(StrEnum):
    """Breakthroughs that meet a priority's SLA and reset the upgrade-review clock."""

    TEMPORARY_FIX = "temporary_fix"
    CAUSE_LOCATED = "cause_located"
    DIRECTION_GIVEN = "direction_given"
    RESOLVED = "resolved"
    OTHER = "other"


class TicketStatus(StrEnum):
    NEW = "new"
    IN_PROGRESS = "in_progress"
    WAITING_ON_DEPARTMENT = "waiting_on_department"
    WAITING_ON_PARTNER = "waiting_on_partner"
    # An agent asked the customer something: the SLA clock is paused until they answer.
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    RESOLVED_AWAITING_CONFIRMATION = "resolved_awaiting_confirmation"
    CLOSED = "closed"


class ResultKind(StrEnum):
    TECHNICAL = "technical"
    COMPENSATION = "compensation"
    SUGGESTION = "suggestion"


class CloseReason(StrEnum):
    CUSTOMER_CONFIRMED = "customer_confirmed"
    NO_REPLY = "no_reply"
    LONG_TERM_PLAN = "long_term_plan"


class Role(StrEnum):
    SYSTEM = "system"
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    DEPARTMENT = "department"
    CUSTOMER = "customer"
    PARTNER = "partner"


class CustomerReplyKind(StrEnum):
    """What a customer's reply says: a message, the answer to "is it solved?", or a rating."""

    MESSAGE = "message"
    SOLVED = "solved"
    NOT_SOLVED = "not_solved"
    CSAT = "csat"
    NPS = "nps"
