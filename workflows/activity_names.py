"""Activity names, importable from workflow code.

The workflows' typed stubs (workflows.activity_stubs) and the activities' implementations
register under these names, so they live beside the contracts rather than in
`activities`: workflow code never imports the activities package. This module must stay cheap and sandbox-safe: no asyncpg, no
structlog, nothing but the contracts' enums. Import it through
`workflow.unsafe.imports_passed_through()` like the contracts.
"""

from __future__ import annotations

from typing import Final

from workflows.contracts import HandoffKind

CLAIM_INTAKE: Final = "claim_intake"
APPEND_EVENTS: Final = "append_events"
NOTIFY_CUSTOMER: Final = "notify_customer"
# The surge check: tickets opened per category and topic, now and before.
COUNT_OPENINGS: Final = "count_openings"
# Hand-offs of a workflow without a store of its own (surges), into the outbox.
SEND_HANDOFFS: Final = "send_handoffs"
# The outbox relay: delivers due outbox rows for a while, then returns a report.
DELIVER_DUE: Final = "deliver_due"
# The weekly review: the week's typical tickets, and its record (entries, snapshot,
# reminders) written in one go.
SAMPLE_WEEK: Final = "sample_week"
# The learned classifier at intake.
CLASSIFY_TEXT: Final = "classify_text"
RECORD_REVIEW: Final = "record_review"

OPEN_WORK_ORDER: Final = "open_work_order"
REMIND_DEPARTMENT: Final = "remind_department"
CONVENE_EMERGENCY_GROUP: Final = "convene_emergency_group"
START_RISK_CONTROL: Final = "start_risk_control"
CONVENE_UPGRADE_REVIEW: Final = "convene_upgrade_review"
CONTACT_PARTNER: Final = "contact_partner"
ALERT_SUPERVISOR: Final = "alert_supervisor"

# Which activity carries out each kind of hand-off. Supervisor standby and SLA
# escalation both page the supervisors, so they share one activity.
HANDOFF_ACTIVITY: Final[dict[HandoffKind, str]] = {
    HandoffKind.WORK_ORDER: OPEN_WORK_ORDER,
    HandoffKind.PROGRESS_REMINDER: REMIND_DEPARTMENT,
    HandoffKind.EMERGENCY_GROUP: CONVENE_EMERGENCY_GROUP,
    HandoffKind.RISK_CONTROL: START_RISK_CONTROL,
    HandoffKind.UPGRADE_REVIEW: CONVENE_UPGRADE_REVIEW,
    HandoffKind.PARTNER_CONTACT: CONTACT_PARTNER,
    HandoffKind.SUPERVISOR_STANDBY: ALERT_SUPERVISOR,
    HandoffKind.SLA_ESCALATION: ALERT_SUPERVISOR,
    HandoffKind.SLA_WARNING: ALERT_SUPERVISOR,
    HandoffKind.REVIEW_REMINDER: ALERT_SUPERVISOR,
    HandoffKind.REVIEW_ESCALATION: ALERT_SUPERVISOR,
    HandoffKind.DELIVERY_FAILED: ALERT_SUPERVISOR,
}
