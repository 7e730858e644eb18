"""TicketWorkflow: one customer-service ticket, from intake to closed loop (SPEC.md §1-§4).

Read top to bottom, it is the SPEC's story:
1. The run loop: store what was decided, sleep until the next deadline or a change.
2. Intake (§1, §2): classify, tag, start the first-response clock, acknowledge async
   channels, convene the emergency group for E, start risk control for account security.
3. Timers (§1, §3): the first response missed, the SLA's warnings, breach and ladder
   (workflows.sla_clock), the daily progress check, upgrade reviews, partner updates.
4. Actions (§1-§4): agents and departments act through updates (or the `act` signal), in
   the order of the table of actions (workflows.contracts.ACTIONS).
5. Customers and partners (§3, §4): replies, ratings, partner answers, failed deliveries.
6. Closing (§4): resolved → result and confirmation request → the customer says solved
   (closed), not solved (reopened), or stays silent for 72 h (closed); or closed with a
   long-term plan; then CSAT and NPS.

Handlers never do I/O: they validate, change state, and add events and effects to the
ticket's record (workflows.ticket_record). The run loop is the one place that stores
them, so effects happen in the order they were decided and a handler never waits on a
slow department system. What operators see is workflows.ticket_view.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import activity_stubs as activity
    from workflows import events as ev
    from workflows import policy as rules
    from workflows import sla_clock, ticket_rules, ticket_timers, ticket_view
    from workflows.classification import classify_intake, model_choice, reclassify, urgent_flows
    from workflows.contracts import (
        ACTIONS,
        Action,
        ActionSignal,
        AddNote,
        Assign,
        Classification,
        Classify,
        Close,
        CustomerReply,
        Deadlines,
        DeliveryFailure,
        Dispatch,
        EngagePartner,
        HandoffData,
        HandoffFacts,
        HandoffKind,
        IntakeClaim,
        MessageKind,
        MessageParams,
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
    from workflows.primitives import SYSTEM, Actor, handle_actions
    from workflows.ticket_record import STORE_TIMEOUT, HandOff, Say, TicketRecord
    from workflows.vocabulary import (
        CloseReason,
        CustomerReplyKind,
        Milestone,
        Role,
        TicketStatus,
    )

# Retired patches (docs/upgrades.md, "Retiring a patch"). Tickets are pinned to the build
# that opened them, so the branches for runs from before each patch are gone: only today's
# behaviour is left. Each `workflow.deprecate_patch` stands where `patched` stood, because
# runs opened since the patch recorded its marker at that point of their history and must
# keep replaying; the next stage removes the calls. The record's own retired patch
# (effects stored with their events) is in workflows.ticket_record.
_TYPED_RECORD = "every-reply-recorded"  # every reply an event; an action id applied once
_CALENDAR = "sla-calendar"  # promises on the SLA clock: calendars, pauses, warnings, ladder
_MODEL_CLASSIFICATION = "model-classification"  # the learned classifier after intake
_LOCAL_CLASSIFICATION = "local-classification"  # ... as a local activity
_BOUNDED_HISTORY = "bounded-history-per-run"  # policy.history_events_per_run
_CLAIMED_LOCALLY = "claim-as-local-activity"  # the intake's key claimed in its first task
_FEEDBACK_WINDOW = "feedback-window"  # CSAT / NPS asked for, and waited for, after closing
# Why each call below stays, and when it goes, in one line: its marker's runs replay
# through it until the builds that recorded it have drained (`ticketflow tickets-before`).
_CLASSIFY_TIMEOUT = timedelta(seconds=30)
# Live patches: each guards a change to the commands a ticket issues (docs/upgrades.md).
_PEOPLE_FIRST = "people-first-priority"  # appends at a person's or at the quiet priority


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
        # A person's input waits to be stored (the intake, to begin with).
        self._person_waiting = True
        # Asked here, in the run's first workflow task, and nowhere later: after a local
        # activity, a replay runs on before the server's next task is read, and a live
        # patch first asked there would answer differently than it did (tried: a
        # nondeterminism error on the intake's claim).
        self._people_first = workflow.patched(_PEOPLE_FIRST)
        self._indexed: dict[str, Any] = {}
        workflow.deprecate_patch(_TYPED_RECORD)  # marker of every run; goes in the next stage
        workflow.deprecate_patch(_CALENDAR)  # marker of every run; goes in the next stage
        handle_actions(ACTIONS, action_name, self._accept, self._validate, TicketView)
        if start.carried_state is not None:
            self._keep(start.carried_state)
            self._state.runs += 1
        else:
            self._open(start, workflow.now())

    def _keep(self, state: TicketState) -> None:
        self._state = state
        self._record = TicketRecord(state, self._policy)

    # ------------------------------------------------------------ the run loop

    @workflow.run
    async def run(self, start: TicketInput) -> TicketOutcome:
        state = self._state
        if start.carried_state is None and await self._is_duplicate_intake(start):
            state.duplicate_of_earlier_run = True
            return ticket_view.outcome(state)
        learned = self._policy.model_min_confidence < 1.0
        if start.carried_state is None and learned:
            # Marker of runs opened with a learned model; goes in the next stage.
            workflow.deprecate_patch(_MODEL_CLASSIFICATION)
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
        return ticket_view.outcome(state)

    async def _carry_out_effects(self) -> None:
        """Store what was decided, then show operators where the ticket stands."""
        await self._record.store(self._store_priority)
        self._publish_for_operators()

    def _store_priority(self) -> Priority:
        """The task-queue priority of the next append (workflows.policy.TaskPriorities):
        what a person sent is stored at `person_waiting`, and what the ticket decided by
        itself (a timer's reminder, a 10:00 herd's) at `quiet`, behind it.

        Per append, not only the workflow's own priority (which the API sets once, from
        `person_waiting` at the start to `quiet`: TicketClient.settle): a person's input
        to a quiet ticket is stored ahead of the herd without changing the ticket's
        priority around every input, which the ticket would have to do by an activity
        (tried: the bench's worker CPU per lifecycle doubled, benchmarks.md)."""
        waiting, self._person_waiting = self._person_waiting, False
        priorities = self._policy.priorities
        key = priorities.person_waiting if waiting else priorities.quiet
        if key is None or not self._people_first:
            return Priority.default  # the ticket's own
        return Priority(priority_key=key)

    def _history_is_long(self) -> bool:
        info = workflow.info()
        if info.is_continue_as_new_suggested():
            return True
        if info.get_current_history_length() < self._policy.history_events_per_run:
            return False
        workflow.deprecate_patch(_BOUNDED_HISTORY)  # marker of long runs; goes in the next stage
        return True

    async def _is_duplicate_intake(self, start: TicketInput) -> bool:
        """Temporal forgets a closed workflow id after retention; PostgreSQL does not."""
        claim_input = IntakeClaim(
            ticket_id=start.ticket_id,
            idempotency_key=start.intake.idempotency_key,
            run_id=workflow.info().first_execution_run_id,
            channel=start.intake.channel,
            opened_at=self._state.opened_at,
        )
        if workflow.patched(_CLAIMED_LOCALLY):
            claim = await workflow.execute_local_activity(
                activity.claim_intake,
                claim_input,
                start_to_close_timeout=STORE_TIMEOUT,
                retry_policy=activity.STORE_RETRY,
                summary="claim idempotency key",
            )
        else:
            claim = await workflow.execute_activity(
                activity.claim_intake,
                claim_input,
                start_to_close_timeout=STORE_TIMEOUT,
                retry_policy=activity.STORE_RETRY,
                summary="claim idempotency key",
            )
        if claim.duplicate:
            workflow.logger.warning("intake key already used by an earlier ticket run; ending")
        return claim.duplicate

    async def _sleep_until_next_deadline(self) -> None:
        name, due = ticket_view.next_deadline(self._state.deadlines)
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

    # ------------------------------------------------------------ intake (§1, §2)

    def _open(self, start: TicketInput, now: datetime) -> None:
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
        self._keep(state)
        deadlines = state.deadlines
        deadlines.first_response = rules.first_response_due(
            self._policy, now, intake.channel, intake.tier, classification.priority
        )
        state.sla_clock = sla_clock.clock_from(state, self._policy, now)
        sla_clock.arm(state, self._policy, now)
        deadlines.upgrade_review = now + rules.scaled(
            self._policy, self._policy.upgrade_review_after
        )
        # The customer's words and the problem snapshot, kept with the ticket for good.
        customer = Actor(id=intake.customer_id, role=Role.CUSTOMER)
        self._record.event(ticket_rules.opened(state), customer)
        if not rules.is_live(self._policy, intake.channel):
            promise = MessageParams(expect_progress_by=deadlines.sla)
            self._record.event(
                ev.Acknowledged(expect_progress_by=deadlines.sla),
                SYSTEM,
                Say(MessageKind.ACKNOWLEDGEMENT, promise),
            )
        self._record.write(urgent_flows(self._policy, classification, previous=None), SYSTEM)

    async def _classify_with_model(self) -> None:
        """The learned classifier's reading of the intake, where it is sure enough."""
        state = self._state
        intake = state.intake
        rules_said = state.classification
        text = TextToClassify(
            subject=intake.subject, description=intake.description, locale=intake.locale
        )
        # Marker of runs opened with a learned model; goes in the next stage.
        workflow.deprecate_patch(_LOCAL_CLASSIFICATION)
        try:
            # Local, inside the intake's workflow task: it takes about 5 ms, and as a
            # regular activity its own task and round trip cost the worker more than the
            # classification itself (docs/benchmarks.md).
            found = await workflow.execute_local_activity(
                activity.classify_text,
                text,
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
        chosen = model_choice(rules_said, found, self._policy.model_min_confidence)
        if chosen is None:
            return
        self._reclassify(chosen, SYSTEM, automatic=True, model_version=found.model_version)
        self._refresh_status(SYSTEM)

    # ------------------------------------------------------------ timers (§1, §3)

    def _fire_due_deadlines(self, now: datetime) -> None:
        state, policy, deadlines = self._state, self._policy, self._state.deadlines
        if deadlines.first_response and deadlines.first_response <= now:
            deadlines.first_response = None
            self._record.write(ticket_timers.first_response_missed(state, policy), SYSTEM)
        if deadlines.sla and deadlines.sla <= now:
            deadlines.sla = None
            entries = ticket_timers.sla_breached(state, policy, now)
            self._record.write(entries, SYSTEM)
        if deadlines.progress_check and deadlines.progress_check <= now:
            deadlines.progress_check = None
            entries = ticket_timers.progress_check(state, policy, now)
            self._record.write(entries, SYSTEM)
        if deadlines.upgrade_review and deadlines.upgrade_review <= now:
            deadlines.upgrade_review = None
            self._record.write(ticket_timers.upgrade_review(state, policy, now), SYSTEM)
        if deadlines.partner_update and deadlines.partner_update <= now:
            deadlines.partner_update = None
            self._record.write(ticket_timers.partner_updates(state, policy, now), SYSTEM)
        if deadlines.sla_warning and deadlines.sla_warning <= now:
            deadlines.sla_warning = None
            self._record_clock(sla_clock.warn(state, policy, now))
        if deadlines.escalation and deadlines.escalation <= now:
            deadlines.escalation = None
            self._record_clock(sla_clock.climb(state, policy, now))
        if deadlines.auto_close and deadlines.auto_close <= now:
            deadlines.auto_close = None
            self._close(CloseReason.NO_REPLY, SYSTEM)

    def _record_clock(self, events: list[sla_clock.SlaEvent]) -> None:
        self._record.write(ticket_timers.sla_told(self._state, self._policy, events), SYSTEM)

    # ------------------------------------------------------------ actions (§1-§4)

    # Every action is an update of its own name (`respond`, `post_progress`, ...),
    # registered in __init__ from the table of actions (workflows.contracts.ACTIONS): the
    # update runs `_on_<name>` below, after `_validate` and ticket_rules accept it. The
    # handlers follow the table's order; `close` opens the closing section at the end.

    @workflow.signal
    def act(self, envelope: ActionSignal) -> None:
        """Fire-and-forget form of every action: a misfit becomes an event, never a failure."""
        action = envelope.action
        if not self._record.first_sighting_of(action):
            return
        reason = self._record.reused_id(action) or self._rejection(action)
        if reason is not None:
            self._record.event(
                ev.ActionRejected(
                    action=action.type,
                    reason=reason,
                    text=action.model_dump_json(exclude={"actor", "type", "action_id"}),
                ),
                action.actor,
            )
            self._heard_from_a_person()
            return
        self._apply(action)

    def _validate(self, action: Action) -> None:
        reason = self._record.reused_id(action)
        if reason is None and self._record.is_resend(action):
            return  # an action applied before, sent again: accepted, and applied once
        reason = reason or self._rejection(action)
        if reason is not None:
            raise ApplicationError(reason, type="ActionRejected", non_retryable=True)

    def _accept(self, action: Action) -> TicketView:
        if self._record.first_sighting_of(action):
            self._apply(action)
        return self.view()

    def _rejection(self, action: Action) -> str | None:
        return ticket_rules.rejection(self._state, self._policy, action, workflow.now())

    def _apply(self, action: Action) -> None:
        handler: Callable[[Action], None] = getattr(self, f"_on_{action.type}")
        handler(action)
        self._refresh_status(action.actor)
        self._heard_from_a_person()

    def _on_respond(self, action: Respond) -> None:
        state = self._state
        now = workflow.now()
        reply = MessageParams(text=action.message)
        self._record.event(
            ev.AgentReplied(message=action.message or "", script_id=action.script_id),
            action.actor,
            Say(MessageKind.AGENT_REPLY, reply),
        )
        # A question to the customer pauses the SLA (sla_clock.follow_pause); any other
        # reply means the next step is ours again.
        state.waiting_on_customer_since = now if action.awaiting_customer else None
        if state.first_response_at is None:
            entries = ticket_timers.first_responded(state, self._policy, now)
            self._record.write(entries, action.actor)

    def _on_classify(self, action: Classify) -> None:
        said = action.model_dump(include={"category", "topic", "priority", "reason"})
        self._reclassify(Classification(**said), action.actor)

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
        previous = self._state.classification
        entries = reclassify(
            self._state,
            self._policy,
            now_is,
            workflow.now(),
            automatic=automatic,
            model_version=model_version,
        )
        self._record.write(entries, actor)
        self._record.write(urgent_flows(self._policy, now_is, previous=previous), SYSTEM)

    def _on_add_note(self, action: AddNote) -> None:
        self._record.event(ev.NoteAdded(text=action.text), action.actor)

    def _on_assign(self, action: Assign) -> None:
        self._state.assignee = action.agent_id
        self._record.event(ev.Assigned(agent_id=action.agent_id), action.actor)

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
        work = HandOff(HandoffKind.WORK_ORDER, new, HandoffFacts(), action.note, snapshot=True)
        self._record.event(
            ev.Dispatched(departments=new, transfers=state.transfers, note=action.note),
            action.actor,
            work,
        )
        if state.deadlines.progress_check is None:
            ticket_timers.arm_progress_check(state, self._policy, now)

    def _on_post_progress(self, action: PostProgress) -> None:
        state = self._state
        now = workflow.now()
        order = state.work_orders[action.department]
        since = order.reminded_at or order.last_progress_at or order.opened_at
        order.last_progress_at = now
        self._record.event(
            ev.ProgressPosted(
                department=action.department,
                response_seconds=(now - since).total_seconds(),
                note=action.note,
            ),
            action.actor,
        )
        if action.work_order_done:
            order.done = True
            self._record.event(ev.WorkOrderDone(department=action.department), action.actor)
            ticket_timers.arm_progress_check(state, self._policy, now)

    def _on_record_milestone(self, action: RecordMilestone) -> None:
        self._on_milestone(action.milestone, action.actor, action.note)

    def _on_milestone(self, milestone: Milestone, actor: Actor, note: str | None) -> None:
        state = self._state
        now = workflow.now()
        if milestone is Milestone.RESOLVED:
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
            # The promise is kept: its clock stops for good.
            self._record_clock(sla_clock.end_pause(state, self._policy, now))
            state.deadlines.sla = None
            state.deadlines.sla_warning = None
            state.deadlines.escalation = None
        self._record.event(
            ev.MilestoneRecorded(milestone=milestone, meets_sla=meets_sla, note=note), actor
        )

    def _on_engage_partner(self, action: EngagePartner) -> None:
        state = self._state
        now = workflow.now()
        state.partners[action.partner] = PartnerEngagement(
            partner=action.partner, engaged_at=now, expected_by=action.expected_by
        )
        every = self._policy.partner_update_every
        contact = HandOff(
            HandoffKind.PARTNER_CONTACT,
            [action.partner],
            HandoffFacts(due_at=action.expected_by),
            action.problem,
            snapshot=True,
            data=HandoffData(checkpoints=action.checkpoints),
        )
        self._record.event(
            ev.PartnerEngaged(
                partner=action.partner,
                expected_by=action.expected_by,
                problem=action.problem,
                checkpoints=action.checkpoints,
            ),
            action.actor,
            contact,
            Say(MessageKind.PARTNER_HANDOFF, MessageParams(every=every)),
        )
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
        result = MessageParams(
            text=action.message, result_kind=action.result_kind, compensation=action.compensation
        )
        self._record.event(
            ev.Resolved(
                result_kind=action.result_kind,
                root_cause=action.root_cause,
                resolution_seconds=(now - state.opened_at).total_seconds(),
                message=action.message,
                compensation=action.compensation,
            ),
            action.actor,
            Say(MessageKind.RESULT, result),
            Say(
                MessageKind.CONFIRMATION_REQUEST,
                MessageParams(within=self._policy.auto_close_after),
            ),
        )

    def _on_record_review_decision(self, action: RecordReviewDecision) -> None:
        state = self._state
        state.review_decisions.append(action.decision)
        next_review_at = None
        if state.resolved_at is None:
            # The board looks again at the checkpoint it named, not 24 h after it met.
            checkpoint = action.next_checkpoint or self._policy.upgrade_review_after
            next_review_at = workflow.now() + rules.scaled(self._policy, checkpoint)
            state.deadlines.upgrade_review = next_review_at
        self._record.event(
            ev.ReviewDecisionRecorded(
                decision=action.decision,
                attendees=action.attendees,
                next_review_at=next_review_at,
            ),
            action.actor,
        )

    # ------------------------------------------------------------ customers and partners (§3, §4)

    @workflow.signal
    def customer_reply(self, reply: CustomerReply) -> None:
        state = self._state
        customer = Actor(id=state.intake.customer_id, role=Role.CUSTOMER)
        if state.status is TicketStatus.CLOSED:
            # While it waits for the ratings it asked for, a closed ticket records them,
            # and records anything else the customer says without reopening: closed is
            # final (SPEC §4), but nothing the customer sent is lost.
            if not self._record.first_sighting(f"reply:{reply.reply_id}"):
                return
            if reply.kind in (CustomerReplyKind.CSAT, CustomerReplyKind.NPS):
                self._record.event(ticket_rules.score(state, reply), customer)
            else:
                self._record.event(
                    ev.CustomerReplied(kind=reply.kind, after_close=True, text=reply.text),
                    customer,
                )
            self._heard_from_a_person()
            return
        if not self._record.first_sighting(f"reply:{reply.reply_id}"):
            return
        resolved = state.status is TicketStatus.RESOLVED_AWAITING_CONFIRMATION
        match reply.kind:
            case CustomerReplyKind.CSAT | CustomerReplyKind.NPS:
                self._record.event(ticket_rules.score(state, reply), customer)
            case CustomerReplyKind.SOLVED if resolved:
                self._record.event(ev.CustomerReplied(kind=reply.kind, text=reply.text), customer)
                self._close(CloseReason.CUSTOMER_CONFIRMED, customer)
            case CustomerReplyKind.NOT_SOLVED if resolved:
                self._record.event(ev.CustomerReplied(kind=reply.kind, text=reply.text), customer)
                self._reopen(customer)
            case _:
                # A new request restarts the 72 h quiet period before auto-close.
                self._record.event(ev.CustomerReplied(kind=reply.kind, text=reply.text), customer)
                # The answer the ticket waited for: the SLA clock runs again.
                state.waiting_on_customer_since = None
                if state.deadlines.auto_close is not None:
                    state.deadlines.auto_close = workflow.now() + rules.scaled(
                        self._policy, self._policy.auto_close_after
                    )
        self._refresh_status(customer)
        self._heard_from_a_person()

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
        self._record.event(ev.Reopened(count=state.reopen_count), customer)

    @workflow.signal
    def partner_callback(self, callback: PartnerCallback) -> None:
        state = self._state
        if not self._record.first_sighting(f"partner:{callback.callback_id}"):
            return
        partner = Actor(id=callback.partner, role=Role.PARTNER)
        engagement = state.partners.get(callback.partner)
        refused = ticket_rules.callback_refusal(state, callback)
        if refused is not None:
            # Kept, not acted on: what the partner said stays in the record.
            self._record.event(
                ev.ActionRejected(action="partner_callback", reason=refused, text=callback.answer),
                partner,
            )
        elif engagement is not None:
            if callback.final:
                engagement.answered_at = workflow.now()
            self._record.event(
                ev.PartnerAnswered(
                    partner=callback.partner, final=callback.final, answer=callback.answer
                ),
                partner,
            )
            if all(p.answered_at is not None for p in state.partners.values()):
                state.deadlines.partner_update = None
        self._refresh_status(partner)
        self._heard_from_a_person()

    @workflow.signal
    def delivery_failed(self, failure: DeliveryFailure) -> None:
        """The relay gave up on a message or hand-off: recorded, and a person is told.
        Nothing the ticket sends is dropped without someone knowing."""
        if not self._record.first_sighting(f"delivery:{failure.dedupe_key}"):
            return
        supervisors = [self._policy.supervisor_queue]
        alert = HandOff(HandoffKind.DELIVERY_FAILED, supervisors, alert_facts(failure))
        alerts = (alert,) if alerts_supervisors(failure) else ()
        self._record.event(ev.DeliveryFailed(**failure.model_dump()), SYSTEM, *alerts)
        self._wake()

    # ------------------------------------------------------------ closing (§4)

    def _on_close(self, action: Close) -> None:
        if action.root_cause:
            self._state.root_cause = action.root_cause
        self._close(CloseReason.LONG_TERM_PLAN, action.actor, long_term_plan=action.long_term_plan)

    def _close(self, reason: CloseReason, actor: Actor, long_term_plan: str | None = None) -> None:
        state = self._state
        state.closed_at = workflow.now()
        self._record_clock(sla_clock.end_pause(state, self._policy, state.closed_at))
        state.close_reason = reason
        state.deadlines = Deadlines()
        told = long_term_plan is not None
        plan = (
            (Say(MessageKind.LONG_TERM_PLAN, MessageParams(text=long_term_plan)),) if told else ()
        )
        self._record.event(
            ev.Closed(reason=reason, root_cause=state.root_cause, long_term_plan=long_term_plan),
            actor,
            *plan,
        )
        self._refresh_status(actor)
        self._ask_for_feedback()

    def _ask_for_feedback(self) -> None:
        """CSAT and NPS (SPEC §5's outcome indicators) can only come after closing: ask
        now, in the closing drain, and listen for policy.feedback_window."""
        window = rules.scaled(self._policy, self._policy.feedback_window)
        if window <= timedelta(0):
            return
        workflow.deprecate_patch(_FEEDBACK_WINDOW)  # marker of closed runs; goes in the next stage
        state = self._state
        until = workflow.now() + window
        state.feedback_until = until
        survey = Say(MessageKind.SATISFACTION_SURVEY, MessageParams(until=until))
        self._record.event(ev.FeedbackRequested(until=until), SYSTEM, survey)

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

    # ------------------------------------------------------------ queries and bookkeeping

    @workflow.query
    def state(self) -> TicketState:
        return self._state

    @workflow.query
    def view(self) -> TicketView:
        return ticket_view.view(self._state, self._policy, workflow.now())

    def _refresh_status(self, actor: Actor) -> None:
        state = self._state
        new = ticket_rules.derive_status(state)
        if new is not state.status:
            old = state.status
            state.status = new
            self._record.event(ev.StatusChanged(previous=old, to=new), actor)
        self._record_clock(sla_clock.follow_pause(state, self._policy, workflow.now()))

    def _publish_for_operators(self) -> None:
        """Search attributes (only what changed) and the UI's current details."""
        wanted = ticket_view.search_attributes(self._state)
        changed = ticket_view.changed_attributes(wanted, self._indexed)
        if changed:
            workflow.upsert_search_attributes(changed)
            self._indexed = wanted
        workflow.set_current_details(ticket_view.details(self._state, self._policy, workflow.now()))

    def _closed(self) -> bool:
        return self._state.status is TicketStatus.CLOSED

    def _wake(self) -> None:
        self._woken = True

    def _heard_from_a_person(self) -> None:
        """Wake for a person's input: the run loop stores it at their priority."""
        self._person_waiting = True
        self._wake()

    def _tag(self, classification: Classification) -> str:
        return rules.tag_for(
            self._policy, classification.category, classification.topic, classification.priority
        )
