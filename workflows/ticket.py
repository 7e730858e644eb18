"""TicketWorkflow: one customer-service ticket, from intake to closed loop (SPEC.md §1-§4).

The story, top to bottom:
1. Intake: classify, tag, start the first-response clock, acknowledge async channels,
   convene the emergency group for E, start risk control for account security.
2. Handling: agents and departments act through updates (or the `act` signal); every
   deadline is one absolute instant in `state.deadlines`, and the run loop sleeps until
   the earliest one or until a handler changes something.
3. Closure: resolve → result and confirmation request → customer says solved (closed),
   not solved (reopened), or stays silent for 72 h (closed); or close with a long-term plan.

Handlers never do I/O: they validate, change state, and queue events and effects. The
run loop is the one place that calls activities, so effects happen in the order they
were decided and a handler never waits on a slow department system.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import activity_names as activity
    from workflows import events as ev
    from workflows import policy as rules
    from workflows import search_attributes as sa
    from workflows import ticket_rules
    from workflows.classification import classify_intake
    from workflows.contracts import (
        ACTIONS,
        Action,
        ActionSignal,
        Assign,
        Classification,
        Classify,
        Close,
        CustomerMessage,
        CustomerReply,
        Deadlines,
        DeliveryFailure,
        Dispatch,
        EngagePartner,
        EventBatch,
        Handoff,
        HandoffFacts,
        HandoffKind,
        IntakeClaim,
        IntakeClaimResult,
        LastMessage,
        MessageKind,
        MessageParams,
        ModelClassification,
        PartnerCallback,
        PartnerEngagement,
        PostProgress,
        RecordMilestone,
        RecordReviewDecision,
        Resolve,
        Respond,
        TextToClassify,
        TicketInput,
        TicketOutcome,
        TicketState,
        TicketView,
        WorkOrderState,
        action_name,
    )
    from workflows.delivery_failures import alert_facts, alerts_supervisors
    from workflows.policy import Pause, SlaClock
    from workflows.primitives import SYSTEM, Actor, typed_update
    from workflows.vocabulary import (
        Category,
        CloseReason,
        CustomerReplyKind,
        Milestone,
        Priority,
        Role,
        TicketStatus,
    )

# Writes to our own PostgreSQL: quick, and worth retrying for as long as it is down.
# Bad data will not get better by retrying, so it fails at once.
_STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=["BadData"],
)
_STORE_TIMEOUT = timedelta(seconds=15)
# Patch: effects are stored with their events in one activity (before: one activity per
# customer message and hand-off, then the append).
_EFFECTS_STORED_WITH_EVENTS = "effects-stored-with-events"
# Patch: a closed ticket asks for CSAT / NPS and waits policy.feedback_window for them.
_FEEDBACK_WINDOW = "feedback-window"
# Patch: the typed record (issue 8). Runs started before it keep their behaviour, or their
# next appends would leave gaps in the store and their replays would fail:
# - every agent reply is an event of its own (`agent_replied`); before, only the first
#   one was (`first_responded`), so later replies took no seq;
# - an action sent again with its action_id is applied once, and an id reused for a
#   different action is refused; before, updates were applied whatever their id;
# - what a partner or customer sends a closed ticket is recorded, not dropped.
_TYPED_RECORD = "every-reply-recorded"
# Patch: calendars and the SLA clock (issue 13). Runs started before it keep their
# timers and events: promises on business or calendar clocks in policy time (a scaled
# daily check keeps its rhythm), the SLA paused while the ticket waits on the customer,
# warnings before a breach and an escalation ladder after it, a raised priority's
# promise counted from the reclassification, and reviews that follow a decision's
# checkpoint and stop once the ticket is resolved.
_CALENDAR = "sla-calendar"
# Patch: the learned classifier runs as an activity after intake (issue 12) and may
# reclassify the ticket where it is surer than the policy's threshold.
_MODEL_CLASSIFICATION = "model-classification"
# The learned classifier runs as a local activity, inside the intake's workflow task: it
# takes about 5 ms, and as a regular activity its own task and round trip cost the worker
# more than the classification itself (docs/benchmarks.md, issue 14).
_LOCAL_CLASSIFICATION = "local-classification"
_CLASSIFY_TIMEOUT = timedelta(seconds=30)
# The deadlines that are promises to the customer (and their warnings): the ticket's
# "next deadline" for operators. The routine ones (daily check, reviews, partner updates,
# auto-close) stay out, so the search attribute changes only when a promise does, not at
# every daily timer (which would cost a history event each).
_PROMISES = ("first_response", "sla_warning", "sla", "escalation")
# Action ids remembered for dropping resends, the most recent kept.
_ACTION_IDS_KEPT = 2000
# How many customer/partner message ids to remember for dropping redelivered signals.
_SEEN_IDS_KEPT = 500


# Worker versioning (docs/upgrades.md): pinned by the worker's default unless configured,
# so a ticket finishes on the build that opened it. No behaviour is declared here: the
# SDK would send it from unversioned workers too, and the server refuses that.
@workflow.defn
class TicketWorkflow:
    @workflow.init
    def __init__(self, start: TicketInput) -> None:
        # Updates may arrive before run() starts, so all state is built here.
        self._policy = start.policy
        self._woken = False
        self._indexed: dict[str, Any] = {}
        self._typed_record = workflow.patched(_TYPED_RECORD)
        self._calendar = workflow.patched(_CALENDAR)
        for action in ACTIONS:
            workflow.set_update_handler(
                action_name(action),
                typed_update(self._accept, action, TicketView),
                validator=self._validate,
            )
        if start.carried_state is not None:
            self._state = start.carried_state
            self._state.runs += 1
            if self._calendar and self._state.sla_clock is None:
                # Carried from a run before the patch: its SLA counts on as it did.
                self._state.sla_clock = self._sla_clock_from(self._state.opened_at)
        else:
            self._state = self._open(start, workflow.now())

    # ------------------------------------------------------------ the run loop

    @workflow.run
    async def run(self, start: TicketInput) -> TicketOutcome:
        state = self._state
        if start.carried_state is None and await self._is_duplicate_intake(start):
            state.duplicate_of_earlier_run = True
            return self._outcome()
        learned = self._policy.model_min_confidence < 1.0
        if start.carried_state is None and learned and workflow.patched(_MODEL_CLASSIFICATION):
            await self._carry_out_effects()  # intake first: its clock and its messages
            await self._classify_with_model()

        while True:
            self._woken = False
            await self._carry_out_effects()
            if self._closed():
                break
            if self._history_is_long():
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self._carry_out_effects()
                if not self._closed():
                    workflow.continue_as_new(
                        TicketInput(
                            ticket_id=state.ticket_id,
                            intake=state.intake,
                            policy=self._policy,
                            carried_state=state,
                        )
                    )
            if not self._woken:
                await self._sleep_until_next_deadline()
            self._fire_due_deadlines(workflow.now())

        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._carry_out_effects()
        await self._collect_feedback()
        return self._outcome()

    async def _collect_feedback(self) -> None:
        """Record CSAT and NPS as they come, until both are in or the window closes."""
        state = self._state
        until = state.feedback_until
        if until is None:
            return
        while True:
            self._woken = False  # before the drain: a rating sent meanwhile wakes the wait
            await self._carry_out_effects()
            if workflow.now() >= until or (state.csat is not None and state.nps is not None):
                break
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._woken,
                    timeout=until - workflow.now(),
                    timeout_summary=f"feedback window closes {until:%Y-%m-%d %H:%M:%S}Z",
                )
        state.feedback_until = None
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._carry_out_effects()

    def _history_is_long(self) -> bool:
        info = workflow.info()
        if info.is_continue_as_new_suggested():
            return True
        # Our own bound (policy.history_events_per_run). Guarded, as it changes commands
        # for long runs.
        bound = self._policy.history_events_per_run
        return info.get_current_history_length() >= bound and workflow.patched(
            "bounded-history-per-run"
        )

    async def _is_duplicate_intake(self, start: TicketInput) -> bool:
        """Temporal forgets a closed workflow id after retention; PostgreSQL does not."""
        claim: IntakeClaimResult = await workflow.execute_activity(
            activity.CLAIM_INTAKE,
            IntakeClaim(
                ticket_id=start.ticket_id,
                idempotency_key=start.intake.idempotency_key,
                run_id=workflow.info().first_execution_run_id,
                channel=start.intake.channel,
                opened_at=self._state.opened_at,
            ),
            result_type=IntakeClaimResult,
            start_to_close_timeout=_STORE_TIMEOUT,
            retry_policy=_STORE_RETRY,
            summary="claim idempotency key",
        )
        if claim.duplicate:
            workflow.logger.warning("intake key already used by an earlier ticket run; ending")
        return claim.duplicate

    async def _sleep_until_next_deadline(self) -> None:
        name, due = self._next_deadline()
        if due is None:
            await workflow.wait_condition(lambda: self._woken)
            return
        wait = due - workflow.now()
        if wait <= timedelta(0):
            return
        # A timeout means the deadline came first: _fire_due_deadlines handles it.
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._woken,
                timeout=wait,
                timeout_summary=f"{name} due {due:%Y-%m-%d %H:%M:%S}Z",
            )

    def _next_deadline(self, among: tuple[str, ...] | None = None) -> tuple[str, datetime | None]:
        pending = [
            (due, name)
            for name, due in self._state.deadlines.model_dump().items()
            if due is not None and (among is None or name in among)
        ]
        if not pending:
            return "nothing", None
        due, name = min(pending)
        return name, due

    async def _carry_out_effects(self) -> None:
        """Store every queued event together with the messages and hand-offs it describes."""
        state = self._state
        while state.pending_messages or state.pending_handoffs or state.pending_events:
            if workflow.patched(_EFFECTS_STORED_WITH_EVENTS):
                await self._store_effects_with_events()
            else:
                await self._run_effects_one_by_one()
        self._publish_for_operators()

    async def _store_effects_with_events(self) -> None:
        # One activity per drain: the outbox rows and the events go into PostgreSQL in
        # one transaction, so a row exists exactly when its event does, and a lifecycle
        # costs one activity per step instead of one per message and hand-off.
        state = self._state
        batch = EventBatch(
            ticket_id=state.ticket_id,
            events=list(state.pending_events),
            messages=list(state.pending_messages),
            handoffs=list(state.pending_handoffs),
        )
        effects = [m.kind.value for m in batch.messages] + [h.kind.value for h in batch.handoffs]
        await self._append(batch, f" + {', '.join(effects)}" if effects else "")
        # Handlers may have queued more while we awaited: keep those.
        del state.pending_events[: len(batch.events)]
        del state.pending_messages[: len(batch.messages)]
        del state.pending_handoffs[: len(batch.handoffs)]

    async def _run_effects_one_by_one(self) -> None:
        """Runs started before _EFFECTS_STORED_WITH_EVENTS replay through this path."""
        state = self._state
        while state.pending_messages:
            message = state.pending_messages[0]
            await self._run_effect(
                activity.NOTIFY_CUSTOMER, message, f"{message.kind.value} → customer"
            )
            state.pending_messages.pop(0)
        while state.pending_handoffs:
            handoff = state.pending_handoffs[0]
            await self._run_effect(
                activity.HANDOFF_ACTIVITY[handoff.kind],
                handoff,
                f"{handoff.kind.value} → {', '.join(handoff.recipients)}",
            )
            state.pending_handoffs.pop(0)
        if state.pending_events:
            batch = list(state.pending_events)
            await self._append(EventBatch(ticket_id=state.ticket_id, events=batch))
            del state.pending_events[: len(batch)]

    async def _append(self, batch: EventBatch, carrying: str = "") -> None:
        await workflow.execute_activity(
            activity.APPEND_EVENTS,
            batch,
            start_to_close_timeout=_STORE_TIMEOUT,
            retry_policy=_STORE_RETRY,
            summary=f"append {len(batch.events)} events{carrying}",
        )

    async def _run_effect(
        self, name: str, payload: CustomerMessage | Handoff, summary: str
    ) -> None:
        try:
            await workflow.execute_activity(
                name,
                payload,
                start_to_close_timeout=_STORE_TIMEOUT,
                retry_policy=_STORE_RETRY,
                summary=summary,
            )
        except ActivityError as err:
            # Only non-retryable failures get here: a bug in what we sent, not in the
            # customer's data (validators checked that). Keep the ticket alive and say so.
            workflow.logger.error("effect %s failed and was dropped: %s", name, err.cause)

    # ------------------------------------------------------------ intake (§1, §2)

    def _open(self, start: TicketInput, now: datetime) -> TicketState:
        # The language and zone the customer reads in, where the intake did not say them.
        intake = start.intake.for_reader(self._policy)
        classification = classify_intake(intake)
        target = rules.sla_target(self._policy, classification.priority)
        state = TicketState(
            ticket_id=start.ticket_id,
            intake=intake,
            opened_at=now,
            classification=classification,
            tag=self._tag(classification),
            sla_milestone=target.met_by,
        )
        self._state = state
        deadlines = state.deadlines
        if self._calendar:
            deadlines.first_response = rules.first_response_due(
                self._policy, now, intake.channel, intake.tier, classification.priority
            )
            state.sla_clock = self._sla_clock_from(now)
            self._arm_sla(now)
        else:
            deadlines.first_response = now + rules.first_response_window(
                self._policy, intake.channel, intake.tier
            )
            deadlines.sla = rules.sla_due(self._policy, classification.priority, now)
        deadlines.upgrade_review = now + rules.scaled(
            self._policy, self._policy.upgrade_review_after
        )
        # The customer's words and the problem snapshot, kept with the ticket for good.
        self._record(
            ev.TicketOpened(
                channel=intake.channel,
                tier=intake.tier,
                customer_id=intake.customer_id,
                category=classification.category,
                topic=classification.topic,
                priority=classification.priority,
                tag=state.tag,
                reason=classification.reason,
                sla_due_at=deadlines.sla,
                first_response_due_at=deadlines.first_response,
                subject=intake.subject,
                description=intake.description,
                locale=intake.locale,
                attachments=list(intake.attachments),
                context=intake.context,
            ),
            Actor(id=intake.customer_id, role=Role.CUSTOMER),
        )
        if not rules.is_live(self._policy, intake.channel):
            seq = self._record(ev.Acknowledged(expect_progress_by=deadlines.sla), SYSTEM)
            self._message(
                MessageKind.ACKNOWLEDGEMENT, seq, MessageParams(expect_progress_by=deadlines.sla)
            )
        self._start_urgent_flows(classification, previous=None)
        return state

    async def _classify_with_model(self) -> None:
        """The learned classifier's reading of the intake, field by field where it is sure
        enough; the rules' answer stays where it is not (and as the explanation)."""
        state = self._state
        intake = state.intake
        rules_said = state.classification
        text = TextToClassify(
            subject=intake.subject, description=intake.description, locale=intake.locale
        )
        try:
            # Local (inside this workflow task) since the patch; a regular activity before.
            local = workflow.patched(_LOCAL_CLASSIFICATION)
            execute = workflow.execute_local_activity if local else workflow.execute_activity
            found: ModelClassification = await execute(
                activity.CLASSIFY_TEXT,
                text,
                result_type=ModelClassification,
                start_to_close_timeout=_CLASSIFY_TIMEOUT,
                # However busy the workers, the ticket waits this long at most.
                schedule_to_close_timeout=2 * _CLASSIFY_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=2),
                summary="classify with the learned model",
            )
        except ActivityError as err:
            # No model is no reason to hold a ticket: the rules' classification stands.
            workflow.logger.warning("learned classifier unavailable: %s", err.cause)
            return
        if state.classification is not rules_said or state.resolved_at or state.closed_at:
            return  # an agent classified or settled it meanwhile: people win
        threshold = self._policy.model_min_confidence
        sure = {f for f, value in found.confidence.items() if value >= threshold}
        if rules_said.priority is Priority.E:
            sure.discard("priority")  # an emergency the rules saw is never downgraded
        chosen = Classification(
            category=found.category if "category" in sure else rules_said.category,
            topic=found.topic if "topic" in sure else rules_said.topic,
            priority=found.priority if "priority" in sure else rules_said.priority,
            reason=", ".join(f"{field} {found.confidence[field]:.2f}" for field in sorted(sure)),
        )
        if (chosen.category, chosen.topic, chosen.priority) == (
            rules_said.category,
            rules_said.topic,
            rules_said.priority,
        ):
            return
        chosen.reason = f"model {found.model_version} ({chosen.reason}); rules: {rules_said.reason}"
        self._reclassify(chosen, SYSTEM, automatic=True, model_version=found.model_version)
        self._refresh_status(SYSTEM)

    def _start_urgent_flows(self, now_is: Classification, previous: Classification | None) -> None:
        """E convenes the emergency group at once; account security starts risk control."""
        if now_is.priority is Priority.E and (
            previous is None or previous.priority is not Priority.E
        ):
            seq = self._record(
                ev.EmergencyGroupConvened(groups=list(self._policy.emergency_group)), SYSTEM
            )
            target = rules.sla_target(self._policy, Priority.E)
            self._hand_off(
                HandoffKind.EMERGENCY_GROUP,
                seq,
                list(self._policy.emergency_group),
                HandoffFacts(within=target.within, milestone=target.met_by),
            )
        if now_is.category is Category.ACCOUNT_SECURITY and (
            previous is None or previous.category is not Category.ACCOUNT_SECURITY
        ):
            risk = self._policy.route_by_category[Category.ACCOUNT_SECURITY]
            seq = self._record(ev.RiskControlStarted(), SYSTEM)
            self._hand_off(HandoffKind.RISK_CONTROL, seq, [risk], HandoffFacts())

    # ------------------------------------------------------------ deadlines

    def _fire_due_deadlines(self, now: datetime) -> None:
        deadlines = self._state.deadlines
        if deadlines.first_response and deadlines.first_response <= now:
            deadlines.first_response = None
            self._first_response_breached()
        if deadlines.sla and deadlines.sla <= now:
            deadlines.sla = None
            self._sla_breached()
        if deadlines.progress_check and deadlines.progress_check <= now:
            deadlines.progress_check = None
            self._daily_progress_check(now)
        if deadlines.upgrade_review and deadlines.upgrade_review <= now:
            deadlines.upgrade_review = None
            self._convene_upgrade_review(now)
        if deadlines.partner_update and deadlines.partner_update <= now:
            deadlines.partner_update = None
            self._send_partner_updates(now)
        if deadlines.sla_warning and deadlines.sla_warning <= now:
            deadlines.sla_warning = None
            self._warn_before_breach(now)
        if deadlines.escalation and deadlines.escalation <= now:
            deadlines.escalation = None
            self._climb_escalation_ladder(now)
        if deadlines.auto_close and deadlines.auto_close <= now:
            deadlines.auto_close = None
            self._close(CloseReason.NO_REPLY, SYSTEM)

    def _first_response_breached(self) -> None:
        state = self._state
        state.first_response_breached = True
        state.standby_requested = True
        target = rules.first_response_window(self._policy, state.intake.channel, state.intake.tier)
        seq = self._record(ev.FirstResponseBreached(target_seconds=target.total_seconds()), SYSTEM)
        promised = rules.first_response_promise(
            self._policy, state.intake.channel, state.intake.tier
        )
        self._message(MessageKind.AUTO_REPLY, seq, MessageParams(within=promised))
        self._hand_off(
            HandoffKind.SUPERVISOR_STANDBY,
            seq,
            [self._policy.supervisor_queue],
            HandoffFacts(within=promised),
        )

    def _sla_breached(self) -> None:
        state = self._state
        state.sla_breached = True
        state.escalated = True
        target = rules.sla_target(self._policy, state.classification.priority)
        seq = self._record(
            ev.SlaBreached(
                priority=state.classification.priority,
                milestone=state.sla_milestone,
                due_at=workflow.now(),
            ),
            SYSTEM,
        )
        if self._calendar:
            state.sla_breached_at = workflow.now()
            state.deadlines.sla_warning = None
            self._climb_escalation_ladder(workflow.now())
            return
        self._hand_off(
            HandoffKind.SLA_ESCALATION,
            seq,
            [self._policy.supervisor_queue],
            HandoffFacts(within=target.within, milestone=target.met_by),
        )

    # ------------------------------------------------------------ the SLA clock (issue 13)

    def _sla_clock_from(self, counts_from: datetime, pauses: list[Pause] | None = None) -> SlaClock:
        priority = self._state.classification.priority
        return SlaClock(
            counts_from=counts_from,
            within=rules.sla_target(self._policy, priority).within,
            clock=rules.clocks_for(self._policy, priority).sla,
            pauses=pauses or [],
        )

    def _arm_sla(self, now: datetime) -> None:
        """The breach and the next warning, from the clock (none while it is paused)."""
        state = self._state
        deadlines = state.deadlines
        sla = state.sla_clock
        if sla is None or state.sla_met_at is not None or state.sla_breached:
            deadlines.sla = deadlines.sla_warning = None
            return
        anchor = state.opened_at
        deadlines.sla = rules.sla_clock_due(self._policy, anchor, sla, now)
        warnings = self._policy.sla_warnings
        deadlines.sla_warning = (
            rules.sla_clock_due(
                self._policy, anchor, sla, now, share=warnings[state.sla_warnings_sent].at
            )
            if state.sla_warnings_sent < len(warnings)
            else None
        )

    def _follow_pause(self) -> None:
        """Waiting on the customer (or, if the policy says so, a partner) stops the SLA
        clock; anything else starts it again. Paused time is recorded on resuming."""
        state = self._state
        sla = state.sla_clock
        if sla is None or state.sla_met_at is not None or state.sla_breached or self._closed():
            return
        pausing = state.status is TicketStatus.WAITING_ON_CUSTOMER or (
            self._policy.pause_sla_on_partner and state.status is TicketStatus.WAITING_ON_PARTNER
        )
        now = workflow.now()
        due = state.deadlines.sla
        if pausing and sla.paused_since is None and (due is None or due > now):
            # (A ticket already past its SLA breaches first: its timer has not been
            # handled yet, and a pause must not hide it.)
            sla.pauses.append(Pause(start=now, reason=state.status.value))
            self._arm_sla(now)
            self._record(ev.SlaPaused(reason=state.status), SYSTEM)
        elif not pausing and sla.paused_since is not None:
            self._end_pause(now)
            self._arm_sla(now)

    def _end_pause(self, now: datetime) -> None:
        """Close the open pause, and record how long it was (on the SLA's clock)."""
        state = self._state
        sla = state.sla_clock
        if sla is None or sla.paused_since is None:
            return
        pause = sla.pauses[-1]
        pause.end = now
        this = rules.clock_between(
            self._policy, sla.clock, state.opened_at, max(pause.start, sla.counts_from), now
        )
        total = rules.paused_time(self._policy, state.opened_at, sla, now)
        met_or_closed = state.sla_met_at is not None or state.closed_at is not None
        self._record(
            ev.SlaResumed(
                paused_seconds=this.total_seconds(),
                total_paused_seconds=total.total_seconds(),
                sla_due_at=None
                if met_or_closed
                else rules.sla_clock_due(self._policy, state.opened_at, sla, now),
            ),
            SYSTEM,
        )

    def _warn_before_breach(self, now: datetime) -> None:
        """Part of the SLA is used: the assignee first, the supervisors later (policy)."""
        state = self._state
        warnings = self._policy.sla_warnings
        due = state.deadlines.sla
        if state.sla_warnings_sent >= len(warnings) or due is None:
            return
        warning = warnings[state.sla_warnings_sent]
        state.sla_warnings_sent += 1
        recipients = (
            [f"{rules.AGENT_PREFIX}{state.assignee}"]
            if warning.notify == "assignee" and state.assignee is not None
            else [self._policy.supervisor_queue]
        )
        target = rules.sla_target(self._policy, state.classification.priority)
        seq = self._record(
            ev.SlaWarned(share=warning.at, sla_due_at=due, notified=recipients), SYSTEM
        )
        self._hand_off(
            HandoffKind.SLA_WARNING,
            seq,
            recipients,
            HandoffFacts(
                due_at=due, share=warning.at, within=target.within, milestone=target.met_by
            ),
        )
        self._arm_sla(now)

    def _climb_escalation_ladder(self, now: datetime) -> None:
        """After a breach, each step of the ladder on its own timer, on the SLA's clock
        (a business-hours SLA escalates in business hours, not at midnight)."""
        state = self._state
        breached_at = state.sla_breached_at
        ladder = self._policy.escalation_ladder
        if breached_at is None or state.sla_met_at is not None:
            return
        clock = state.sla_clock.clock if state.sla_clock is not None else rules.Clock.CALENDAR
        target = rules.sla_target(self._policy, state.classification.priority)
        while state.escalation_level < len(ladder):
            step = ladder[state.escalation_level]
            due = rules.clock_add(self._policy, clock, state.opened_at, breached_at, step.after)
            if due > now:
                state.deadlines.escalation = due
                return
            state.escalation_level += 1
            seq = self._record(ev.SlaEscalated(level=state.escalation_level, to=step.to), SYSTEM)
            self._hand_off(
                HandoffKind.SLA_ESCALATION,
                seq,
                [step.to],
                HandoffFacts(
                    within=target.within, milestone=target.met_by, number=state.escalation_level
                ),
            )
        state.deadlines.escalation = None

    def _daily_progress_check(self, now: datetime) -> None:
        """Remind only the departments that have not posted since the previous check."""
        state = self._state
        previous_check = state.last_progress_check_at
        silent = [
            order.department
            for order in state.work_orders.values()
            if not order.done
            and (
                order.last_progress_at is None
                or (previous_check is not None and order.last_progress_at <= previous_check)
            )
        ]
        state.last_progress_check_at = now
        # Armed first: the reminder names the next check as the time progress is due by.
        self._arm_progress_check(now)
        if silent:
            for department in silent:
                state.work_orders[department].reminded_at = now
            seq = self._record(ev.ProgressReminded(departments=silent), SYSTEM)
            self._hand_off(
                HandoffKind.PROGRESS_REMINDER,
                seq,
                silent,
                HandoffFacts(due_at=state.deadlines.progress_check),
            )

    def _convene_upgrade_review(self, now: datetime) -> None:
        state = self._state
        state.reviews_convened += 1
        state.escalated = True
        board = list(self._policy.upgrade_review_board)
        seq = self._record(ev.UpgradeReviewConvened(number=state.reviews_convened), SYSTEM)
        self._hand_off(
            HandoffKind.UPGRADE_REVIEW,
            seq,
            board,
            HandoffFacts(within=self._policy.upgrade_review_after, number=state.reviews_convened),
        )
        state.deadlines.upgrade_review = now + rules.scaled(
            self._policy, self._policy.upgrade_review_after
        )

    def _send_partner_updates(self, now: datetime) -> None:
        waiting = [p for p in self._state.partners.values() if p.answered_at is None]
        for engagement in waiting:
            engagement.updates_sent += 1
            seq = self._record(
                ev.PartnerUpdateSent(partner=engagement.partner, number=engagement.updates_sent),
                SYSTEM,
            )
            self._message(
                MessageKind.PARTNER_PROGRESS,
                seq,
                MessageParams(
                    every=self._policy.partner_update_every, number=engagement.updates_sent
                ),
            )
        if waiting:
            self._state.deadlines.partner_update = now + rules.scaled(
                self._policy, self._policy.partner_update_every
            )

    def _arm_progress_check(self, now: datetime) -> None:
        open_orders = any(not order.done for order in self._state.work_orders.values())
        if not open_orders:
            self._state.deadlines.progress_check = None
        elif self._calendar:
            # In policy time from the ticket's opening: a scaled day keeps one check.
            self._state.deadlines.progress_check = rules.next_daily_check(
                self._policy, self._state.opened_at, now, self._state.classification.priority
            )
        else:
            self._state.deadlines.progress_check = rules.next_progress_check(self._policy, now)

    # ------------------------------------------------------------ agent and department actions

    # Every action is an update of its own name (`respond`, `post_progress`, ...),
    # registered in __init__ from the table of actions (workflows.contracts.ACTIONS): the
    # update runs `_on_<name>` below, after `_validate` and ticket_rules accept it.

    @workflow.signal
    def act(self, envelope: ActionSignal) -> None:
        """Fire-and-forget form of every action: a misfit becomes an event, never a failure."""
        action = envelope.action
        if not self._first_sighting_of(action):
            return
        reason = self._reused_id(action) or self._rejection(action)
        if reason is not None:
            self._record(
                ev.ActionRejected(
                    action=action.type,
                    reason=reason,
                    text=action.model_dump_json(exclude={"actor", "type", "action_id"}),
                ),
                action.actor,
            )
            self._wake()
            return
        self._apply(action)

    def _validate(self, action: Action) -> None:
        reason = self._reused_id(action)
        if reason is None and self._is_resend(action):
            return  # an action applied before, sent again: accepted, and applied once
        reason = reason or self._rejection(action)
        if reason is not None:
            raise ApplicationError(reason, type="ActionRejected", non_retryable=True)

    def _accept(self, action: Action) -> TicketView:
        if not self._typed_record or self._first_sighting_of(action):
            self._apply(action)
        return self._view()

    def _is_resend(self, action: Action) -> bool:
        seen = self._state.seen_actions
        return self._typed_record and action.action_id is not None and action.action_id in seen

    def _reused_id(self, action: Action) -> str | None:
        """An action id names one action: the same id on another action is a caller's
        mistake, refused rather than mistaken for a resend."""
        if not self._is_resend(action):
            return None
        assert action.action_id is not None
        if self._state.seen_actions[action.action_id] == ticket_rules.fingerprint(action):
            return None
        return f"action_id {action.action_id} was already used for another action; use a new id"

    def _first_sighting_of(self, action: Action) -> bool:
        """An action sent again with its `action_id` (a retry after a timeout, even into a
        later run) is applied once."""
        if action.action_id is None:
            return True
        if not self._typed_record:
            return self._first_sighting(f"action:{action.action_id}")  # signals, as before
        seen = self._state.seen_actions
        if action.action_id in seen:
            return False
        seen[action.action_id] = ticket_rules.fingerprint(action)
        for oldest in list(seen)[: max(0, len(seen) - _ACTION_IDS_KEPT)]:
            del seen[oldest]
        return True

    def _rejection(self, action: Action) -> str | None:
        return ticket_rules.rejection(self._state, self._policy, action, workflow.now())

    def _apply(self, action: Action) -> None:
        handler: Callable[[Action], None] = getattr(self, f"_on_{action.type}")
        handler(action)
        self._refresh_status(action.actor)
        self._wake()

    def _on_respond(self, action: Respond) -> None:
        state = self._state
        now = workflow.now()
        if self._typed_record:
            seq = self._record(
                ev.AgentReplied(message=action.message or "", script_id=action.script_id),
                action.actor,
            )
        else:
            seq = None  # runs from before: the reply has no event of its own
        self._message(MessageKind.AGENT_REPLY, seq, MessageParams(text=action.message))
        if self._calendar:
            # A question to the customer pauses the SLA (_follow_pause); any other reply
            # means the next step is ours again.
            state.waiting_on_customer_since = now if action.awaiting_customer else None
        if state.first_response_at is None:
            state.first_response_at = now
            state.deadlines.first_response = None
            target = rules.first_response_window(
                self._policy, state.intake.channel, state.intake.tier
            )
            seconds = (now - state.opened_at).total_seconds()
            within = seconds <= target.total_seconds()
            if self._calendar:
                # On a business clock, in time if before the instant the clock set.
                intake = state.intake
                within = now <= rules.first_response_due(
                    self._policy,
                    state.opened_at,
                    intake.channel,
                    intake.tier,
                    state.classification.priority,
                )
            self._record(
                ev.FirstResponded(seconds=seconds, within_target=within),
                action.actor,
            )

    def _on_assign(self, action: Assign) -> None:
        self._state.assignee = action.agent_id
        self._record(ev.Assigned(agent_id=action.agent_id), action.actor)

    def _on_record_milestone(self, action: RecordMilestone) -> None:
        self._on_milestone(action.milestone, action.actor, action.note)

    def _on_close(self, action: Close) -> None:
        if action.root_cause:
            self._state.root_cause = action.root_cause
        self._close(CloseReason.LONG_TERM_PLAN, action.actor, long_term_plan=action.long_term_plan)

    def _on_record_review_decision(self, action: RecordReviewDecision) -> None:
        state = self._state
        state.review_decisions.append(action.decision)
        next_review_at = None
        if self._calendar and state.resolved_at is None:
            # The board looks again at the checkpoint it named, not 24 h after it met.
            checkpoint = action.next_checkpoint or self._policy.upgrade_review_after
            next_review_at = workflow.now() + rules.scaled(self._policy, checkpoint)
            state.deadlines.upgrade_review = next_review_at
        self._record(
            ev.ReviewDecisionRecorded(
                decision=action.decision,
                attendees=action.attendees,
                next_review_at=next_review_at,
            ),
            action.actor,
        )

    def _on_classify(self, action: Classify) -> None:
        self._reclassify(
            Classification(
                category=action.category,
                topic=action.topic,
                priority=action.priority,
                reason=action.reason,
            ),
            action.actor,
        )

    def _reclassify(
        self,
        now_is: Classification,
        actor: Actor,
        *,
        automatic: bool = False,
        model_version: str | None = None,
    ) -> None:
        """A new classification, by an agent or the learned model: the tag, the SLA of the
        new priority, and the urgent flows a raise to E or account security starts."""
        state = self._state
        previous = state.classification
        previous_tag = state.tag
        state.classification = now_is
        state.tag = self._tag(state.classification)
        counts_from: datetime | None = None
        if now_is.priority is not previous.priority and state.sla_met_at is None:
            target = rules.sla_target(self._policy, now_is.priority)
            state.sla_milestone = target.met_by
            if self._calendar:
                counts_from = self._rebase_sla(previous.priority, now_is.priority)
            elif not state.sla_breached:
                # The promise follows the new priority, counted from intake.
                state.deadlines.sla = rules.sla_due(self._policy, now_is.priority, state.opened_at)
        seq = self._record(
            ev.Classified(
                category=now_is.category,
                topic=now_is.topic,
                priority=now_is.priority,
                tag=state.tag,
                previous_tag=previous_tag,
                reason=now_is.reason,
                automatic=automatic,
                sla_due_at=state.deadlines.sla,
                sla_counts_from=counts_from,
                model_version=model_version,
            ),
            actor,
        )
        due = state.deadlines.sla
        told = not automatic or not rules.is_live(self._policy, state.intake.channel)
        if (
            told
            and counts_from is not None
            and rules.is_raise(previous.priority, now_is.priority)
            and (due is None or due > workflow.now())
        ):
            # The customer is told the new, shorter promise (one still to keep) if they were
            # told one (an async channel's acknowledgement, or an agent's reclassification).
            target = rules.sla_target(self._policy, now_is.priority)
            self._message(
                MessageKind.PROMISE_CHANGED,
                seq,
                MessageParams(within=target.within, until=state.deadlines.sla),
            )
        self._start_urgent_flows(state.classification, previous=previous)

    def _rebase_sla(self, before: Priority, after: Priority) -> datetime | None:
        """The SLA of a new priority: a raised one counts from now (or from intake, as the
        policy says), a lowered one from intake; pauses since then are kept."""
        state = self._state
        if state.sla_breached or state.sla_clock is None:
            return None
        now = workflow.now()
        from_now = (
            rules.is_raise(before, after)
            and self._policy.raised_priority_counts_from == "reclassification"
        )
        # Otherwise from intake: a raise then a lowering never stretches the promise.
        counts_from = now if from_now else state.opened_at
        state.sla_clock = self._sla_clock_from(counts_from, state.sla_clock.pauses)
        state.sla_warnings_sent = 0
        self._arm_sla(now)
        return counts_from

    def _on_dispatch(self, action: Dispatch) -> None:
        state = self._state
        now = workflow.now()
        new = [
            d
            for d in dict.fromkeys(action.departments)
            if ticket_rules.open_order(state, d) is None
        ]
        for department in new:
            state.work_orders[department] = WorkOrderState(department=department, opened_at=now)
        state.transfers += len(new)
        seq = self._record(
            ev.Dispatched(departments=new, transfers=state.transfers, note=action.note),
            action.actor,
        )
        self._hand_off(
            HandoffKind.WORK_ORDER, seq, new, HandoffFacts(), words=action.note, snapshot=True
        )
        if state.deadlines.progress_check is None:
            self._arm_progress_check(now)

    def _on_post_progress(self, action: PostProgress) -> None:
        state = self._state
        now = workflow.now()
        order = state.work_orders[action.department]
        since = order.reminded_at or order.last_progress_at or order.opened_at
        order.last_progress_at = now
        self._record(
            ev.ProgressPosted(
                department=action.department,
                response_seconds=(now - since).total_seconds(),
                note=action.note,
            ),
            action.actor,
        )
        if action.work_order_done:
            order.done = True
            self._record(ev.WorkOrderDone(department=action.department), action.actor)
            self._arm_progress_check(now)

    def _on_milestone(self, milestone: Milestone, actor: Actor, note: str | None) -> None:
        state = self._state
        now = workflow.now()
        state.last_milestone_at = now
        if self._calendar and milestone is Milestone.RESOLVED:
            state.deadlines.upgrade_review = None  # reviews stop once it is resolved
        elif state.resolved_at is None:
            state.deadlines.upgrade_review = now + rules.scaled(
                self._policy, self._policy.upgrade_review_after
            )
        meets_sla = state.sla_met_at is None and milestone in (
            state.sla_milestone,
            Milestone.RESOLVED,
        )
        if meets_sla:
            state.sla_met_at = now
            if self._calendar:
                self._end_pause(now)  # the promise is kept: its clock stops for good
            state.deadlines.sla = None
            state.deadlines.sla_warning = None
            state.deadlines.escalation = None
        self._record(
            ev.MilestoneRecorded(milestone=milestone, meets_sla=meets_sla, note=note), actor
        )

    def _on_engage_partner(self, action: EngagePartner) -> None:
        state = self._state
        now = workflow.now()
        state.partners[action.partner] = PartnerEngagement(
            partner=action.partner, engaged_at=now, expected_by=action.expected_by
        )
        seq = self._record(
            ev.PartnerEngaged(
                partner=action.partner,
                expected_by=action.expected_by,
                problem=action.problem,
                checkpoints=action.checkpoints,
            ),
            action.actor,
        )
        self._hand_off(
            HandoffKind.PARTNER_CONTACT,
            seq,
            [action.partner],
            HandoffFacts(due_at=action.expected_by),
            words=action.problem,
            checkpoints=action.checkpoints,
            snapshot=True,
        )
        every = self._policy.partner_update_every
        self._message(MessageKind.PARTNER_HANDOFF, seq, MessageParams(every=every))
        state.deadlines.partner_update = now + rules.scaled(self._policy, every)

    def _on_resolve(self, action: Resolve) -> None:
        state = self._state
        now = workflow.now()
        # The words go in `resolved`; the milestone only marks the breakthrough.
        self._on_milestone(Milestone.RESOLVED, action.actor, None)
        state.resolved_at = now
        state.waiting_on_customer_since = None  # the question is answered by the result
        state.result_kind = action.result_kind
        state.root_cause = action.root_cause
        deadlines = state.deadlines
        deadlines.upgrade_review = None
        deadlines.partner_update = None
        deadlines.first_response = None
        deadlines.auto_close = now + rules.scaled(self._policy, self._policy.auto_close_after)
        seq = self._record(
            ev.Resolved(
                result_kind=action.result_kind,
                root_cause=action.root_cause,
                resolution_seconds=(now - state.opened_at).total_seconds(),
                message=action.message,
                compensation=action.compensation,
            ),
            action.actor,
        )
        self._message(
            MessageKind.RESULT,
            seq,
            MessageParams(
                text=action.message,
                result_kind=action.result_kind,
                compensation=action.compensation,
            ),
        )
        self._message(
            MessageKind.CONFIRMATION_REQUEST,
            seq,
            MessageParams(within=self._policy.auto_close_after),
        )

    # ------------------------------------------------------------ customers and partners

    @workflow.signal
    def customer_reply(self, reply: CustomerReply) -> None:
        state = self._state
        customer = Actor(id=state.intake.customer_id, role=Role.CUSTOMER)
        if state.status is TicketStatus.CLOSED:
            # While it waits for the ratings it asked for, a closed ticket records them,
            # and records anything else the customer says without reopening: closed is
            # final (SPEC §4), but nothing the customer sent is lost.
            if state.feedback_until is None and not self._typed_record:
                return
            if not self._first_sighting(f"reply:{reply.reply_id}"):
                return
            if reply.kind in (CustomerReplyKind.CSAT, CustomerReplyKind.NPS):
                self._record_score(reply, customer)
            else:
                self._record(
                    ev.CustomerReplied(kind=reply.kind, after_close=True, text=reply.text),
                    customer,
                )
            self._wake()
            return
        if not self._first_sighting(f"reply:{reply.reply_id}"):
            return
        resolved = state.status is TicketStatus.RESOLVED_AWAITING_CONFIRMATION
        match reply.kind:
            case CustomerReplyKind.CSAT | CustomerReplyKind.NPS:
                self._record_score(reply, customer)
            case CustomerReplyKind.SOLVED if resolved:
                self._record(ev.CustomerReplied(kind=reply.kind, text=reply.text), customer)
                self._close(CloseReason.CUSTOMER_CONFIRMED, customer)
            case CustomerReplyKind.NOT_SOLVED if resolved:
                self._record(ev.CustomerReplied(kind=reply.kind, text=reply.text), customer)
                self._reopen(customer)
            case _:
                # A new request restarts the 72 h quiet period before auto-close.
                self._record(ev.CustomerReplied(kind=reply.kind, text=reply.text), customer)
                # The answer the ticket waited for: the SLA clock runs again.
                state.waiting_on_customer_since = None
                if state.deadlines.auto_close is not None:
                    state.deadlines.auto_close = workflow.now() + rules.scaled(
                        self._policy, self._policy.auto_close_after
                    )
        self._refresh_status(customer)
        self._wake()

    def _record_score(self, reply: CustomerReply, customer: Actor) -> None:
        low, high = (1, 5) if reply.kind is CustomerReplyKind.CSAT else (0, 10)
        if reply.score is None or not low <= reply.score <= high:
            self._record(
                ev.ActionRejected(
                    action=reply.kind.value,
                    reason=f"{reply.kind.value} score must be {low}-{high}, got {reply.score}",
                    text=reply.text,
                ),
                customer,
            )
        elif reply.kind is CustomerReplyKind.CSAT:
            self._state.csat = reply.score
            self._record(ev.CsatRecorded(score=reply.score, text=reply.text), customer)
        else:
            self._state.nps = reply.score
            self._record(ev.NpsRecorded(score=reply.score, text=reply.text), customer)

    def _reopen(self, customer: Actor) -> None:
        state = self._state
        now = workflow.now()
        state.reopen_count += 1
        state.resolved_at = None
        state.waiting_on_customer_since = None
        state.deadlines.auto_close = None
        state.deadlines.upgrade_review = now + rules.scaled(
            self._policy, self._policy.upgrade_review_after
        )
        self._record(ev.Reopened(count=state.reopen_count), customer)

    @workflow.signal
    def partner_callback(self, callback: PartnerCallback) -> None:
        state = self._state
        closed = state.status is TicketStatus.CLOSED
        if (closed and not self._typed_record) or not self._first_sighting(
            f"partner:{callback.callback_id}"
        ):
            return
        partner = Actor(id=callback.partner, role=Role.PARTNER)
        engagement = state.partners.get(callback.partner)
        refused = (
            f"ticket {state.ticket_id} is closed"
            if closed
            else f"no open engagement with partner {callback.partner}"
            if engagement is None or engagement.answered_at is not None
            else None
        )
        if refused is not None:
            # Kept, not acted on: what the partner said stays in the record.
            self._record(
                ev.ActionRejected(action="partner_callback", reason=refused, text=callback.answer),
                partner,
            )
        elif engagement is not None:
            if callback.final:
                engagement.answered_at = workflow.now()
            self._record(
                ev.PartnerAnswered(
                    partner=callback.partner, final=callback.final, answer=callback.answer
                ),
                partner,
            )
            if all(p.answered_at is not None for p in state.partners.values()):
                state.deadlines.partner_update = None
        self._refresh_status(partner)
        self._wake()

    @workflow.signal
    def delivery_failed(self, failure: DeliveryFailure) -> None:
        """The relay gave up on a message or hand-off: recorded, and a person is told.
        Nothing the ticket sends is dropped without someone knowing."""
        if not self._first_sighting(f"delivery:{failure.dedupe_key}"):
            return
        seq = self._record(ev.DeliveryFailed(**failure.model_dump()), SYSTEM)
        if alerts_supervisors(failure):
            self._hand_off(
                HandoffKind.DELIVERY_FAILED,
                seq,
                [self._policy.supervisor_queue],
                alert_facts(failure),
            )
        self._wake()

    # ------------------------------------------------------------ closing (§4)

    def _close(self, reason: CloseReason, actor: Actor, long_term_plan: str | None = None) -> None:
        state = self._state
        state.closed_at = workflow.now()
        if self._calendar:
            self._end_pause(state.closed_at)
        state.close_reason = reason
        state.deadlines = Deadlines()
        seq = self._record(
            ev.Closed(reason=reason, root_cause=state.root_cause, long_term_plan=long_term_plan),
            actor,
        )
        if long_term_plan is not None:
            self._message(MessageKind.LONG_TERM_PLAN, seq, MessageParams(text=long_term_plan))
        self._refresh_status(actor)
        self._ask_for_feedback()

    def _ask_for_feedback(self) -> None:
        """CSAT and NPS (SPEC §5's outcome indicators) can only come after closing: ask
        now, in the closing drain, and listen for policy.feedback_window."""
        window = rules.scaled(self._policy, self._policy.feedback_window)
        if window <= timedelta(0) or not workflow.patched(_FEEDBACK_WINDOW):
            return
        state = self._state
        until = workflow.now() + window
        state.feedback_until = until
        seq = self._record(ev.FeedbackRequested(until=until), SYSTEM)
        self._message(MessageKind.SATISFACTION_SURVEY, seq, MessageParams(until=until))

    # ------------------------------------------------------------ queries

    @workflow.query
    def state(self) -> TicketState:
        return self._state

    @workflow.query
    def view(self) -> TicketView:
        return self._view()

    # ------------------------------------------------------------ bookkeeping

    def _refresh_status(self, actor: Actor) -> None:
        state = self._state
        new = ticket_rules.derive_status(state)
        if new is not state.status:
            old = state.status
            state.status = new
            self._record(ev.StatusChanged(previous=old, to=new), actor)
        if self._calendar:
            self._follow_pause()

    def _record(self, data: ev.EventPayload, actor: Actor) -> int:
        """Queue one event for the next append; returns its seq."""
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
        return event.seq

    def _effect_key(self, seq: int | None, kind: str) -> str:
        """An outbox row's identity: the event that sent it, and a number of its own (one
        event may send several rows; a reply before the every-reply patch sent none)."""
        state = self._state
        key = f"{state.ticket_id}:{seq or 0}:{kind}:{state.next_effect}"
        state.next_effect += 1
        return key

    def _message(self, kind: MessageKind, seq: int | None, params: MessageParams) -> None:
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
                live=rules.is_live(self._policy, intake.channel),
                customer_id=intake.customer_id,
                # Settled at opening (Intake.for_reader); older runs' intakes always had one.
                locale=intake.locale or self._policy.default_locale,
                time_zone=intake.time_zone,
                kind=kind,
                params=params,
            )
        )

    def _hand_off(
        self,
        kind: HandoffKind,
        seq: int,
        recipients: list[str],
        facts: HandoffFacts,
        *,
        words: str | None = None,
        snapshot: bool = False,
        **data: Any,
    ) -> None:
        """Tell people of the company something: what, as facts. The words are the staff
        templates' of the company's locale (activities.messages), rendered at delivery;
        `words` are a person's own (a work order's note), carried as they are."""
        state = self._state
        if snapshot:
            # Departments and partners get the problem snapshot and attachments with the work.
            data["snapshot"] = state.intake.context.model_dump(mode="json", exclude={"ip"})
            data["attachments"] = list(state.intake.attachments)
            data["description"] = state.intake.description
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

    def _first_sighting(self, message_id: str) -> bool:
        """Signals arrive at least once: remember recent ids to drop redeliveries."""
        seen = self._state.seen_message_ids
        if message_id in seen:
            return False
        seen.append(message_id)
        del seen[:-_SEEN_IDS_KEPT]
        return True

    def _closed(self) -> bool:
        return self._state.status is TicketStatus.CLOSED

    def _wake(self) -> None:
        self._woken = True

    def _tag(self, classification: Classification) -> str:
        return rules.tag_for(
            self._policy, classification.category, classification.topic, classification.priority
        )

    def _publish_for_operators(self) -> None:
        """Search attributes (only what changed) and the UI's current details."""
        state = self._state
        wanted: dict[str, Any] = self._calendar_attributes() | {
            sa.TICKET_STATUS.name: state.status.value,
            sa.TICKET_PRIORITY.name: state.classification.priority.value,
            sa.TICKET_CATEGORY.name: state.classification.category.value,
            sa.TICKET_TOPIC.name: state.classification.topic.value,
            sa.TICKET_CHANNEL.name: state.intake.channel.value,
            sa.TICKET_TIER.name: state.intake.tier.value,
            sa.TICKET_DEPARTMENTS.name: sorted(state.work_orders),
            sa.TICKET_TAGS.name: [state.tag],
            sa.TICKET_SLA_DEADLINE.name: state.deadlines.sla,
            sa.TICKET_SLA_BREACHED.name: state.sla_breached,
            sa.TICKET_ESCALATED.name: state.escalated,
            sa.TICKET_ROOT_CAUSE.name: state.root_cause,
        }
        changed = [
            key.value_set(wanted[key.name]) if wanted[key.name] is not None else key.value_unset()
            for key in sa.ALL
            if key.name in wanted and self._indexed.get(key.name, _UNSET) != wanted[key.name]
        ]
        if changed:
            workflow.upsert_search_attributes(changed)
            self._indexed = wanted
        workflow.set_current_details(self._details())

    def _calendar_attributes(self) -> dict[str, Any]:
        # Runs from before the calendar patch never set these: upserting them would add
        # commands their histories do not have.
        if not self._calendar:
            return {}
        sla = self._state.sla_clock
        _, next_at = self._next_deadline(_PROMISES)
        return {
            sa.TICKET_SLA_PAUSED.name: sla is not None and sla.paused_since is not None,
            sa.TICKET_NEXT_DEADLINE.name: next_at,
        }

    def _details(self) -> str:
        state = self._state
        lines = [
            f"**{state.status.value}** · `{state.tag}`",
            f"waiting for: {ticket_rules.waiting_for(state)}",
        ]
        for name, due in state.deadlines.model_dump().items():
            if due is not None:
                lines.append(f"- {name.replace('_', ' ')} due {due:%Y-%m-%d %H:%M:%S} UTC")
        if state.sla_breached:
            lines.append("- ⚠ SLA breached")
        paused_since, paused = self._paused()
        if paused_since is not None:
            lines.append(f"- ⏸ SLA paused since {paused_since:%Y-%m-%d %H:%M:%S} UTC")
        if paused:
            lines.append(f"- SLA paused {paused.total_seconds() / 3600:.2f} h in all")
        return "\n".join(lines)

    def _paused(self) -> tuple[datetime | None, timedelta]:
        """Since when the SLA clock is paused (None: running), and its paused time."""
        state = self._state
        sla = state.sla_clock
        if sla is None:
            return None, timedelta(0)
        total = rules.paused_time(self._policy, state.opened_at, sla, workflow.now())
        running = state.sla_met_at is not None or state.sla_breached
        return (None if running else sla.paused_since), total

    def _view(self) -> TicketView:
        state = self._state
        intake = state.intake
        paused_since, paused = self._paused()
        next_name, next_at = self._next_deadline(_PROMISES)
        return TicketView(
            ticket_id=state.ticket_id,
            status=state.status,
            subject=intake.subject,
            description=intake.description,
            customer_id=intake.customer_id,
            tier=intake.tier,
            channel=intake.channel,
            locale=intake.locale or self._policy.default_locale,
            classification=state.classification,
            tag=state.tag,
            assignee=state.assignee,
            departments=sorted(state.work_orders),
            open_work_orders=sorted(d for d, o in state.work_orders.items() if not o.done),
            deadlines=state.deadlines,
            sla_breached=state.sla_breached,
            escalated=state.escalated,
            root_cause=state.root_cause,
            reopen_count=state.reopen_count,
            events_recorded=state.next_seq - 1,
            waiting_for=ticket_rules.waiting_for(state),
            partners=sorted(state.partners.values(), key=lambda p: p.engaged_at),
            last_message=state.last_message,
            sla_paused_since=paused_since,
            sla_paused_seconds=paused.total_seconds(),
            next_deadline=next_name if next_at is not None else None,
            next_deadline_at=next_at,
        )

    def _outcome(self) -> TicketOutcome:
        state = self._state
        return TicketOutcome(
            ticket_id=state.ticket_id,
            status=state.status,
            close_reason=state.close_reason,
            root_cause=state.root_cause,
            duplicate=state.duplicate_of_earlier_run,
        )


_UNSET = object()
