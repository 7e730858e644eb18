"""The one way backends open tickets and act on them.

tickets = TicketClient(client, task_queue="tickets", policy=ServicePolicy())
opened = await tickets.open(intake)          # same idempotency key → same ticket
await tickets.act(opened.ticket_id, Respond(actor=agent, message="..."))
view = await tickets.view(opened.ticket_id)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from workflows.classification import classify_intake
from workflows.contracts import (
    ActionSignal,
    CustomerReply,
    Intake,
    PartnerCallback,
    TicketAction,
    TicketInput,
    TicketOutcome,
    TicketState,
    TicketView,
)
from workflows.policy import ServicePolicy, tag_for
from workflows.ticket import TicketWorkflow


def ticket_id_for(idempotency_key: str) -> str:
    """The workflow id of the ticket an intake key opens.

    Derived, not random, so a retried intake lands on the same workflow. Hashed, because
    workflow ids are never encrypted and a backend's key may embed customer data.
    """
    return "ticket-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class OpenedTicket:
    ticket_id: str
    created: bool


class ActionRejected(Exception):
    """The ticket refused an action; the message says why in words a person understands."""


class TicketClient:
    def __init__(self, client: Client, *, task_queue: str, policy: ServicePolicy) -> None:
        self._client = client
        self._task_queue = task_queue
        self._policy = policy

    @property
    def temporal(self) -> Client:
        return self._client

    async def open(self, intake: Intake) -> OpenedTicket:
        ticket_id = ticket_id_for(intake.idempotency_key)
        guess = classify_intake(intake)
        tag = tag_for(self._policy, guess.category, guess.topic, guess.priority)
        try:
            await self._client.start_workflow(
                TicketWorkflow.run,
                TicketInput(ticket_id=ticket_id, intake=intake, policy=self._policy),
                id=ticket_id,
                task_queue=self._task_queue,
                # FAIL tells us whether this call created the ticket; REJECT_DUPLICATE keeps
                # a closed ticket's id from starting again while Temporal retains it (after
                # that, the intake_keys table in PostgreSQL refuses it).
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=f"[{guess.priority.value}] {tag.rsplit('-', 1)[0]}: {intake.subject}",
                static_details=(
                    f"channel `{intake.channel.value}` · tier `{intake.tier.value}` · "
                    f"classified: {guess.reason}"
                ),
            )
        except WorkflowAlreadyStartedError:
            return OpenedTicket(ticket_id=ticket_id, created=False)
        return OpenedTicket(ticket_id=ticket_id, created=True)

    def handle(self, ticket_id: str) -> WorkflowHandle[TicketWorkflow, TicketOutcome]:
        return self._client.get_workflow_handle_for(TicketWorkflow.run, ticket_id)

    async def act(self, ticket_id: str, action: TicketAction) -> TicketView:
        """Send an action as its update and wait until the ticket has accepted it."""
        try:
            view: TicketView = await self.handle(ticket_id).execute_update(
                action.type, action, result_type=TicketView
            )
        except WorkflowUpdateFailedError as err:
            if isinstance(err.cause, ApplicationError):
                raise ActionRejected(err.cause.message) from err
            raise
        return view

    async def act_once(self, ticket_id: str, action: TicketAction) -> TicketView:
        """`act`, where resending an action with the same `action_id` applies it once.

        The action id becomes the update id (scoped by action type), and Temporal attaches
        a repeated update id to the first one: an HTTP caller that timed out may retry.
        """
        update_id = None if action.action_id is None else f"{action.type}:{action.action_id}"
        try:
            view: TicketView = await self.handle(ticket_id).execute_update(
                action.type, action, id=update_id, result_type=TicketView
            )
        except WorkflowUpdateFailedError as err:
            if isinstance(err.cause, ApplicationError):
                raise ActionRejected(err.cause.message) from err
            raise
        return view

    async def act_later(self, ticket_id: str, action: TicketAction) -> None:
        """Fire and forget: a misfit becomes an `action_rejected` event on the ticket."""
        await self.handle(ticket_id).signal(TicketWorkflow.act, ActionSignal(action=action))

    async def customer_reply(self, ticket_id: str, reply: CustomerReply) -> None:
        await self.handle(ticket_id).signal(TicketWorkflow.customer_reply, reply)

    async def partner_callback(self, ticket_id: str, callback: PartnerCallback) -> None:
        await self.handle(ticket_id).signal(TicketWorkflow.partner_callback, callback)

    async def view(self, ticket_id: str) -> TicketView:
        return await self.handle(ticket_id).query(TicketWorkflow.view)

    async def state(self, ticket_id: str) -> TicketState:
        return await self.handle(ticket_id).query(TicketWorkflow.state)
