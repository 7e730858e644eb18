"""Side effects for people outside the ticket, written to the `outbox` table.

A ticket's messages and hand-offs are written in the same transaction as the events
that describe them (`EventStore.append_events`), so a row exists exactly when its event
does. A relay delivers outbox rows to SMS/push/mail gateways and department systems and
marks them dispatched, so delivery is retried, rate-limited and audited apart from the
ticket. Every row has a dedupe key, which makes a retried write a no-op.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity

from activities.database import Pool, encode_json
from activities.errors import bad_data
from workflows import activity_names as names
from workflows.contracts import CustomerMessage, Handoff, HandoffBatch, HandoffKind
from workflows.policy import ServicePolicy, department_address

log = structlog.get_logger()


def insert_rows_sql(first: int) -> str:
    """One INSERT for any number of rows, from `row_arrays` at parameters $first.. and
    the ticket id at $1 (EventStore puts it inside its append statement). unnest turns
    the arrays into rows; ORDER BY gives ids in the order the ticket decided them (the
    relay's send order); a row already there (a retried write) is left as it is."""
    keys, kinds, destinations, payloads = (f"${first + i}::text[]" for i in range(4))
    seqs = f"${first + 4}::int[]"
    return f"""
        INSERT INTO outbox (ticket_id, dedupe_key, kind, channel_or_recipient, payload, event_seq)
        SELECT $1, r.dedupe_key, r.kind, r.destination, r.payload::jsonb, r.event_seq
        FROM unnest({keys}, {kinds}, {destinations}, {payloads}, {seqs}) WITH ORDINALITY
            AS r(dedupe_key, kind, destination, payload, event_seq, position)
        ORDER BY r.position
        ON CONFLICT (dedupe_key) DO NOTHING
    """


_INSERT = insert_rows_sql(2)

PARTNER_PREFIX = "partner:"
# A department the worker's routing table does not know (the ticket's policy and the
# worker's settings disagree): the row is kept under this prefix for the relay to
# dead-letter and an operator to see, rather than dropping the work or the ticket's events.
UNROUTABLE_PREFIX = "unroutable:"


CUSTOMER_MESSAGE_PREFIX = "customer_message:"


class OutboxMessage(BaseModel):
    """A customer message as the outbox holds it, as the event store reads it back for a
    ticket's thread (`stores.thread`)."""

    model_config = ConfigDict(frozen=True)

    event_seq: int | None  # None: written before rows named their event
    kind: str
    channel: str
    message: CustomerMessage
    # The words as delivered; None while the message is on its way.
    rendered: str | None
    created_at: datetime


@dataclass(frozen=True)
class OutboxRow:
    dedupe_key: str
    kind: str
    destination: str
    payload: dict[str, Any]
    event_seq: int | None  # the event that sent it


class Outbox:
    def __init__(self, pool: Pool, policy: ServicePolicy) -> None:
        self._pool = pool
        self._policy = policy

    # ------------------------------------------------------------ rows

    def rows(
        self, messages: Iterable[CustomerMessage], handoffs: Iterable[Handoff]
    ) -> list[OutboxRow]:
        """The rows for what one drain of a ticket decided, customer messages first."""
        rows = [_message_row(message) for message in messages]
        for handoff in handoffs:
            if not handoff.recipients:
                # Nobody to hand to (a policy with an empty group): the ticket's event
                # still says it happened; failing would lose those events too.
                log.error("hand-off without recipients", dedupe_key=handoff.dedupe_key)
                continue
            payload = handoff.model_dump(mode="json")
            rows.extend(
                OutboxRow(
                    _handoff_row_key(handoff, recipient),
                    handoff.kind.value,
                    address,
                    payload,
                    handoff.event_seq,
                )
                for recipient, address in self._addresses(handoff)
            )
        return rows

    async def enqueue(self, ticket_id: str, rows: list[OutboxRow]) -> None:
        """Insert the rows (all or none); a row already there is left as it is."""
        if not rows:
            return
        await self._pool.execute(_INSERT, ticket_id, *row_arrays(rows))
        log_unroutable(ticket_id, rows)

    def _addresses(self, handoff: Handoff) -> list[tuple[str, str]]:
        if handoff.kind is HandoffKind.PARTNER_CONTACT:
            # Partners are reached through their own integration, keyed by name.
            return [(partner, f"{PARTNER_PREFIX}{partner}") for partner in handoff.recipients]
        return [(department, self._address(department)) for department in handoff.recipients]

    def _address(self, department: str) -> str:
        try:
            return department_address(self._policy, department)
        except ValueError:
            return f"{UNROUTABLE_PREFIX}{department}"

    # ------------------------------------------------------------ activities

    @activity.defn(name=names.SEND_HANDOFFS)
    async def send_handoffs(self, batch: HandoffBatch) -> None:
        """A surge's hand-offs: rows like a ticket's, an unknown department's kept for
        the relay to report rather than refused here."""
        await self.enqueue(batch.owner_id, self.rows([], batch.handoffs))

    # One activity per message or hand-off kind, from before effects were stored through
    # `append_events` and `send_handoffs` (docs/upgrades.md):
    # - `convene_emergency_group` is still called: surge investigations started before
    #   "surge-one-outbox-path" convene their emergency group through it
    #   (workflows/surge.py, its stub in workflows/activity_stubs.py); they stay open until
    #   someone closes them (`TicketStatus = 'investigating'` lists them);
    # - no workflow code of this build calls the others (the ticket's one-per-message
    #   path was retired): they stay registered until no worker of an older build runs.

    @activity.defn(name=names.NOTIFY_CUSTOMER)
    async def notify_customer(self, message: CustomerMessage) -> None:
        await self.enqueue(message.ticket_id, self.rows([message], []))

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
        await self._hand_off(
            handoff,
            HandoffKind.SUPERVISOR_STANDBY,
            HandoffKind.SLA_ESCALATION,
            HandoffKind.SLA_WARNING,
            HandoffKind.REVIEW_REMINDER,
            HandoffKind.REVIEW_ESCALATION,
            HandoffKind.DELIVERY_FAILED,
        )

    async def _hand_off(self, handoff: Handoff, *accepted: HandoffKind) -> None:
        # A kind routed to the wrong activity is a workflow bug; failing loudly beats
        # sending a risk-control case to the work-order queue. These runs' workflow code
        # drops a failed effect and carries on, so an unknown department fails here too.
        if handoff.kind not in accepted:
            raise bad_data(
                f"{handoff.kind.value} hand-off sent to the activity for "
                f"{', '.join(kind.value for kind in accepted)}"
            )
        if not handoff.recipients:
            raise bad_data(f"{handoff.kind.value} hand-off {handoff.dedupe_key} has no recipients")
        rows = self.rows([], [handoff])
        unknown = [r.destination for r in rows if r.destination.startswith(UNROUTABLE_PREFIX)]
        if unknown:
            raise bad_data(
                f"unknown department(s) {', '.join(d.removeprefix(UNROUTABLE_PREFIX) for d in unknown)}; "
                f"known: {', '.join(sorted(self._policy.departments))}"
            )
        await self.enqueue(handoff.ticket_id, rows)


def _handoff_row_key(handoff: Handoff, recipient: str) -> str:
    return f"{handoff.dedupe_key}:{recipient}"


def handoff_recipient(handoff: Handoff, row_key: str) -> str:
    """Whom one row of a hand-off is for, as the policy's `staff_locales` names them: a
    department (`tech`), `agent:<id>` or `partner:<name>`."""
    recipient = row_key.removeprefix(_handoff_row_key(handoff, ""))
    if handoff.kind is HandoffKind.PARTNER_CONTACT:
        return f"{PARTNER_PREFIX}{recipient}"
    return recipient


def _message_row(message: CustomerMessage) -> OutboxRow:
    return OutboxRow(
        message.dedupe_key,
        f"{CUSTOMER_MESSAGE_PREFIX}{message.kind.value}",
        message.channel.value,
        message.model_dump(mode="json"),
        message.event_seq,
    )


# How many parameters `row_arrays` fills.
ROW_ARRAYS = 5


def row_arrays(rows: list[OutboxRow]) -> tuple[list[Any], ...]:
    """The rows as the column arrays `insert_rows_sql` takes."""
    return (
        [row.dedupe_key for row in rows],
        [row.kind for row in rows],
        [row.destination for row in rows],
        [encode_json(row.payload) for row in rows],
        [row.event_seq for row in rows],
    )


def log_unroutable(ticket_id: str, rows: list[OutboxRow]) -> None:
    unroutable = [row.dedupe_key for row in rows if row.destination.startswith(UNROUTABLE_PREFIX)]
    if unroutable:
        log.error("outbox rows have no known destination", ticket_id=ticket_id, rows=unroutable)


class Delivery(BaseModel):
    """One outbox row as people look at it: what went where, and when it arrived."""

    key: str = Field(exclude=True)
    event_seq: int | None = Field(default=None, description="The event that decided it.")
    kind: str
    destination: str
    customer_facing: bool
    text: str | None = Field(description="As delivered; null while on its way (then rendered).")
    locale: str | None
    queued_at: datetime
    delivered_at: datetime | None
    attempts: int
    failed_at: datetime | None
    error: str | None
    payload: dict[str, Any] = Field(exclude=True)


_DELIVERIES = """
    SELECT dedupe_key AS key, event_seq, kind, channel_or_recipient AS destination, rendered AS text, locale,
        created_at AS queued_at, dispatched_at AS delivered_at, attempts, failed_at,
        last_error AS error, payload
    FROM outbox WHERE ticket_id = $1 ORDER BY id
"""


async def deliveries(pool: Pool, ticket_id: str) -> list[Delivery]:
    """Every message and hand-off of a ticket, in the order it decided them."""
    return [
        Delivery(
            customer_facing=record["kind"].startswith(CUSTOMER_MESSAGE_PREFIX),
            **dict(record),
        )
        for record in await pool.fetch(_DELIVERIES, ticket_id)
    ]
