"""Side effects for people outside the ticket, written to the `outbox` table.

An activity here only records the message or hand-off; a relay delivers outbox rows to
SMS/push/mail gateways and department systems and marks them dispatched. That keeps
each activity a single idempotent insert (the dedupe key makes a retry a no-op) and
lets delivery be retried, rate-limited and audited apart from the ticket.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import structlog
from temporalio import activity

from activities import names
from activities.errors import bad_data
from workflows.contracts import CustomerMessage, Handoff, HandoffKind
from workflows.policy import ServicePolicy, department_address

if TYPE_CHECKING:
    from activities.database import Pool

log = structlog.get_logger()

_INSERT = """
    INSERT INTO outbox (ticket_id, dedupe_key, kind, channel_or_recipient, payload)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (dedupe_key) DO NOTHING
"""

PARTNER_PREFIX = "partner:"


class Outbox:
    def __init__(self, pool: Pool, policy: ServicePolicy) -> None:
        self._pool = pool
        self._policy = policy

    @activity.defn(name=names.NOTIFY_CUSTOMER)
    async def notify_customer(self, message: CustomerMessage) -> None:
        await self._enqueue(
            message.ticket_id,
            [
                (
                    message.dedupe_key,
                    f"customer_message:{message.kind.value}",
                    message.channel.value,
                    message.model_dump(mode="json"),
                )
            ],
        )

    # One activity per kind of hand-off, so each shows under its own name in the
    # Temporal UI and can get its own timeout or worker later.

    @activity.defn(name=names.OPEN_WORK_ORDER)
    async def open_work_order(self, handoff: Handoff) -> None:
        await self._hand_off(handoff, HandoffKind.WORK_ORDER)

    @activity.defn(name=names.REMIND_DEPARTMENT)
    async def remind_department(self, handoff: Handoff) -> None:
        await self._hand_off(handoff, HandoffKind.PROGRESS_REMINDER)

    @activity.defn(name=names.CONVENE_EMERGENCY_GROUP)
    async def convene_emergency_group(self, handoff: Handoff) -> None:
        await self._hand_off(handoff, HandoffKind.EMERGENCY_GROUP)

    @activity.defn(name=names.START_RISK_CONTROL)
    async def start_risk_control(self, handoff: Handoff) -> None:
        await self._hand_off(handoff, HandoffKind.RISK_CONTROL)

    @activity.defn(name=names.CONVENE_UPGRADE_REVIEW)
    async def convene_upgrade_review(self, handoff: Handoff) -> None:
        await self._hand_off(handoff, HandoffKind.UPGRADE_REVIEW)

    @activity.defn(name=names.CONTACT_PARTNER)
    async def contact_partner(self, handoff: Handoff) -> None:
        await self._hand_off(handoff, HandoffKind.PARTNER_CONTACT)

    @activity.defn(name=names.ALERT_SUPERVISOR)
    async def alert_supervisor(self, handoff: Handoff) -> None:
        await self._hand_off(handoff, HandoffKind.SUPERVISOR_STANDBY, HandoffKind.SLA_ESCALATION)

    # ------------------------------------------------------------ shared

    async def _hand_off(self, handoff: Handoff, *accepted: HandoffKind) -> None:
        # A kind routed to the wrong activity is a workflow bug; failing loudly beats
        # sending a risk-control case to the work-order queue.
        if handoff.kind not in accepted:
            raise bad_data(
                f"{handoff.kind.value} hand-off sent to the activity for "
                f"{', '.join(kind.value for kind in accepted)}"
            )
        if not handoff.recipients:
            raise bad_data(f"{handoff.kind.value} hand-off {handoff.dedupe_key} has no recipients")
        payload = handoff.model_dump(mode="json")
        rows = [
            (f"{handoff.dedupe_key}:{recipient}", handoff.kind.value, address, payload)
            for recipient, address in self._addresses(handoff)
        ]
        await self._enqueue(handoff.ticket_id, rows)

    def _addresses(self, handoff: Handoff) -> Iterable[tuple[str, str]]:
        """(recipient, where to deliver) for each recipient, validated before any write."""
        if handoff.kind is HandoffKind.PARTNER_CONTACT:
            # Partners are reached through their own integration, keyed by name.
            return [(partner, f"{PARTNER_PREFIX}{partner}") for partner in handoff.recipients]
        try:
            return [
                (department, department_address(self._policy, department))
                for department in handoff.recipients
            ]
        except ValueError as error:
            raise bad_data(str(error)) from error

    async def _enqueue(self, ticket_id: str, rows: list[tuple[str, str, str, Any]]) -> None:
        # executemany runs in one implicit transaction: all recipients or none.
        await self._pool.executemany(_INSERT, [(ticket_id, *row) for row in rows])
        log.info("outbox rows enqueued", ticket_id=ticket_id, kind=rows[0][1], rows=len(rows))
