"""The ticket's record: what it decided, queued as events with the customer messages and
hand-offs they describe, and stored by the run loop in one activity per drain.

Handlers never do I/O: they add to the record, and the run loop calls `store()`, so
effects happen in the order they were decided and a handler never waits on a slow
department system. The record also remembers what it has already taken in (action ids,
redelivered signals), so a resend counts once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import Priority

from workflows import activity_stubs as activity
from workflows import events as ev
from workflows import ticket_rules
from workflows.contracts import (
    Action,
    CustomerMessage,
    EventBatch,
    Handoff,
    HandoffData,
    HandoffFacts,
    HandoffKind,
    LastMessage,
    MessageKind,
    MessageParams,
    TicketState,
)
from workflows.policy import ServicePolicy, is_live
from workflows.primitives import Actor, reused_action_id

STORE_TIMEOUT = timedelta(seconds=15)
# Retired patch (docs/upgrades.md): effects are stored with their events in one activity
# (before it, one activity per customer message and hand-off, then the append).
_EFFECTS_STORED_WITH_EVENTS = "effects-stored-with-events"
# Action ids remembered for dropping resends, the most recent kept.
_ACTION_IDS_KEPT = 2000
# How many customer/partner message ids to remember for dropping redelivered signals.
_SEEN_IDS_KEPT = 500


@dataclass(frozen=True)
class Say:
    """A message to the customer, sent with the event that decided it."""

    kind: MessageKind
    params: MessageParams


@dataclass(frozen=True)
class HandOff:
    """Work or news for people of the company, sent with the event that decided it."""

    kind: HandoffKind
    recipients: list[str]
    facts: HandoffFacts
    # A person's own words it carries (a work order's note), and whether the problem
    # snapshot and attachments go with it (work for departments and partners).
    words: str | None = None
    snapshot: bool = False
    data: HandoffData = field(default_factory=HandoffData)


Effect = Say | HandOff


@dataclass(frozen=True)
class Entry:
    """One event and the effects it describes: what a rule decides, for the record."""

    event: ev.EventPayload
    effects: tuple[Effect, ...] = ()


class TicketRecord:
    """The record of one ticket run, kept in (and carried with) its state."""

    def __init__(self, state: TicketState, policy: ServicePolicy) -> None:
        self._state = state
        self._policy = policy

    # ------------------------------------------------------------ adding to it

    def write(self, entries: list[Entry], actor: Actor) -> None:
        for entry in entries:
            self.event(entry.event, actor, *entry.effects)

    def event(self, data: ev.EventPayload, actor: Actor, *effects: Effect) -> int:
        """Queue one event for the next append, with the messages and hand-offs it
        describes, in order; returns its seq."""
        state = self._state
        event = ev.DomainEvent(
            ticket_id=state.ticket_id,
            seq=state.next_seq,
            occurred_at=workflow.now(),
            actor=actor,
            data=data,
        )
        state.pending_events.append(event)
        state.next_seq += 1
        words = data.words()
        if words is not None and data.audience is not None:
            state.last_message = LastMessage(
                at=event.occurred_at, actor=actor, audience=data.audience, text=words
            )
        for effect in effects:
            if isinstance(effect, Say):
                self.message(effect.kind, event.seq, effect.params)
            else:
                self.hand_off(
                    effect.kind,
                    event.seq,
                    effect.recipients,
                    effect.facts,
                    words=effect.words,
                    snapshot=effect.snapshot,
                    data=effect.data,
                )
        return event.seq

    def message(self, kind: MessageKind, seq: int, params: MessageParams) -> None:
        """Say something to the customer: what, as data. The words are the templates' of
        the customer's locale (activities.messages), rendered when it is delivered."""
        state = self._state
        intake = state.intake
        state.pending_messages.append(
            CustomerMessage(
                ticket_id=state.ticket_id,
                dedupe_key=self._effect_key(seq, kind.value),
                event_seq=seq,
                channel=intake.channel,
                live=is_live(self._policy, intake.channel),
                customer_id=intake.customer_id,
                # Settled at opening (Intake.for_reader); older runs' intakes always had one.
                locale=intake.locale or self._policy.default_locale,
                time_zone=intake.time_zone,
                kind=kind,
                params=params,
            )
        )

    def hand_off(
        self,
        kind: HandoffKind,
        seq: int,
        recipients: list[str],
        facts: HandoffFacts,
        *,
        words: str | None = None,
        snapshot: bool = False,
        data: HandoffData | None = None,
    ) -> None:
        """Tell people of the company something: what, as facts. The words are the staff
        templates' of the company's locale (activities.messages), rendered at delivery;
        `words` are a person's own (a work order's note), carried as they are."""
        state = self._state
        data = data or HandoffData()
        if snapshot:
            # Departments and partners get the problem snapshot and attachments with the
            # work; the IP stays with the ticket.
            intake = state.intake
            data = data.model_copy(
                update={
                    "snapshot": intake.context.model_copy(update={"ip": None}),
                    "attachments": list(intake.attachments),
                    "description": intake.description,
                }
            )
        state.pending_handoffs.append(
            Handoff(
                ticket_id=state.ticket_id,
                dedupe_key=self._effect_key(seq, kind.value),
                event_seq=seq,
                kind=kind,
                recipients=recipients,
                summary=words,
                tag=state.tag,
                priority=state.classification.priority,
                data=data,
                facts=facts,
            )
        )

    def _effect_key(self, seq: int, kind: str) -> str:
        """An outbox row's identity: the event that sent it, and a number of its own (one
        event may send several rows)."""
        state = self._state
        key = f"{state.ticket_id}:{seq}:{kind}:{state.next_effect}"
        state.next_effect += 1
        return key

    # ------------------------------------------------------------ what it took in already

    def first_sighting(self, message_id: str) -> bool:
        """Signals arrive at least once: remember recent ids to drop redeliveries."""
        seen = self._state.seen_message_ids
        if message_id in seen:
            return False
        seen.append(message_id)
        del seen[:-_SEEN_IDS_KEPT]
        return True

    def first_sighting_of(self, action: Action) -> bool:
        """An action sent again with its `action_id` (a retry after a timeout, even into a
        later run) is applied once."""
        if action.action_id is None:
            return True
        seen = self._state.seen_actions
        if action.action_id in seen:
            return False
        seen[action.action_id] = ticket_rules.fingerprint(action)
        for oldest in list(seen)[: max(0, len(seen) - _ACTION_IDS_KEPT)]:
            del seen[oldest]
        return True

    def is_resend(self, action: Action) -> bool:
        seen = self._state.seen_actions
        return action.action_id is not None and action.action_id in seen

    def reused_id(self, action: Action) -> str | None:
        """An action id names one action: the same id on another action is a caller's
        mistake, refused rather than mistaken for a resend."""
        if not self.is_resend(action):
            return None
        assert action.action_id is not None
        if self._state.seen_actions[action.action_id] == ticket_rules.fingerprint(action):
            return None
        return reused_action_id(action.action_id)

    # ------------------------------------------------------------ storing it

    def pending(self) -> bool:
        state = self._state
        return bool(state.pending_messages or state.pending_handoffs or state.pending_events)

    async def store(self, priority: Callable[[], Priority] = lambda: Priority.default) -> None:
        """Store every queued event together with the messages and hand-offs it describes.

        One activity per drain: the outbox rows and the events go into PostgreSQL in one
        transaction, so a row exists exactly when its event does, and a lifecycle costs
        one activity per step instead of one per message and hand-off. `priority` says the
        task-queue priority of each append as it is made (the ticket's own by default)."""
        state = self._state
        while self.pending():
            # Marker of every run (at its first drain); goes in the next stage.
            workflow.deprecate_patch(_EFFECTS_STORED_WITH_EVENTS)
            batch = EventBatch(
                ticket_id=state.ticket_id,
                events=list(state.pending_events),
                messages=list(state.pending_messages),
                handoffs=list(state.pending_handoffs),
            )
            kinds = [m.kind.value for m in batch.messages] + [h.kind.value for h in batch.handoffs]
            carrying = f" + {', '.join(kinds)}" if kinds else ""
            # An activity, not a local one: its batch is in the history before it runs. A
            # local activity would commit before the task that decided it, and if that
            # task failed, its retry could take in another update and decide other events
            # for the same sequence numbers (tried in issue 25: under load, the
            # concurrent-replies test found stored replies that the ticket did not hold).
            await workflow.execute_activity(
                activity.append_events,
                batch,
                start_to_close_timeout=STORE_TIMEOUT,
                retry_policy=activity.STORE_RETRY,
                summary=f"append {len(batch.events)} events{carrying}",
                priority=priority(),
            )
            # Handlers may have queued more while we awaited: keep those.
            del state.pending_events[: len(batch.events)]
            del state.pending_messages[: len(batch.messages)]
            del state.pending_handoffs[: len(batch.handoffs)]
