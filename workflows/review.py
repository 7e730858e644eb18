"""The weekly review (SPEC §5): typical tickets sampled, a 5-Why for each, and every
action it ends in followed to done.

The story, top to bottom:
1. A Schedule starts `WeeklyReviewKickoffWorkflow` on Monday 10:00 (the policy's day, time
   and zone). It names the week before and starts `WeeklyReviewWorkflow` with the id
   `review-<ISO week>`: started twice (by the Schedule and by a lead, or by two
   schedules), it is one review.
2. The review samples the week's typical tickets (an activity over PostgreSQL): every SLA
   breach and reopening, then low satisfaction, upgrade reviews, the most frequent root
   causes and surged categories in turn, seeded by the week, each with its reasons.
3. Review leads record, per sampled ticket, the surface problem, why 1 … why n, and the
   root cause with its follow-up actions (updates, validated by `review_rules`).
4. Each follow-up's due date is a timer: its owner is reminded before it and at it, and
   past the grace period the service lead is told. A lead closes it done or deferred.
5. The review completes when every analysis is concluded and every follow-up closed. A
   long one continues as new.

Every word goes to PostgreSQL (`review_entries`) with the review's current state, which
the report reads; workflow code only decides, the activity writes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from workflows import activity_stubs as activity
    from workflows import delivery_failures, review_rules
    from workflows.contracts import (
        DeliveryFailure,
        Handoff,
        HandoffData,
        HandoffFacts,
        HandoffKind,
    )
    from workflows.policy import AGENT_PREFIX
    from workflows.primitives import (
        SYSTEM,
        Actor,
        fingerprint,
        handle_actions,
        reused_action_id,
    )
    from workflows.review_contracts import (
        REVIEW_ACTIONS,
        AddWhy,
        Analysis,
        CloseFollowUp,
        Conclude,
        FailedReminder,
        FollowUp,
        FollowUpStatus,
        RecordProblem,
        ReviewAction,
        ReviewEntry,
        ReviewEntryKind,
        ReviewInput,
        ReviewKickoff,
        ReviewRecord,
        ReviewState,
        ReviewView,
        SampleRequest,
        Step,
        review_action_name,
        review_id,
    )
    from workflows.vocabulary import Priority

_STORE_TIMEOUT = timedelta(seconds=30)
_ACTION_IDS_KEPT = 500
_FAILURES_KEPT = 50
_SCHEDULED_AT = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


def _fingerprint(action: ReviewAction) -> str:
    return fingerprint(action, review_action_name(type(action)))


@workflow.defn
class WeeklyReviewKickoffWorkflow:
    """What the Schedule runs: the review of the week before, started once."""

    @workflow.run
    async def run(self, start: ReviewKickoff) -> str:
        zone = review_rules.review_zone(start.policy)
        # The time the Schedule meant, not when a worker got to it: a kickoff delayed past
        # the next Monday still reviews its own week.
        scheduled = workflow.info().typed_search_attributes.get(_SCHEDULED_AT)
        week = review_rules.week_before(scheduled or workflow.now(), zone)
        period_start, period_end = review_rules.week_period(week, zone)
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await workflow.start_child_workflow(
                WeeklyReviewWorkflow.run,
                ReviewInput(
                    week=week,
                    period_start=period_start,
                    period_end=period_end,
                    policy=start.policy,
                ),
                id=review_id(week),
                # A review that failed or was terminated can be run again; one that
                # completed, or is running, cannot.
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary=f"weekly review of {week}",
            )
        return review_id(week)


@workflow.defn
class WeeklyReviewWorkflow:
    @workflow.init
    def __init__(self, start: ReviewInput) -> None:
        self._policy = start.policy
        self._woken = False
        self._sampled = start.carried_state is not None
        self._pending: list[ReviewEntry] = []
        self._handoffs: list[Handoff] = []
        self._stored_once = False
        handle_actions(REVIEW_ACTIONS, review_action_name, self._accept, self._validate, ReviewView)
        if start.carried_state is not None:
            self._state = start.carried_state
            self._state.runs += 1
        else:
            self._state = ReviewState(
                review_id=review_id(start.week),
                week=start.week,
                period_start=start.period_start,
                period_end=start.period_end,
                started_at=workflow.now(),
            )

    @workflow.run
    async def run(self, start: ReviewInput) -> ReviewView:
        state = self._state
        if not self._sampled:
            await self._take_sample(start)
        while True:
            self._woken = False
            await self._record()
            if review_rules.is_complete(state):
                break
            if workflow.info().is_continue_as_new_suggested() or (
                workflow.info().get_current_history_length()
                >= self._policy.review.history_events_per_run
            ):
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self._record()
                workflow.continue_as_new(
                    ReviewInput(
                        week=state.week,
                        period_start=state.period_start,
                        period_end=state.period_end,
                        policy=self._policy,
                        carried_state=state,
                    )
                )
            await self._sleep_until_next_chase()
            self._chase_due_follow_ups(workflow.now())
        await workflow.wait_condition(workflow.all_handlers_finished)
        state.completed_at = workflow.now()
        self._entry(ReviewEntryKind.COMPLETED, SYSTEM, text=review_rules.waiting_for(state))
        await self._record()
        return self._view()

    async def _take_sample(self, start: ReviewInput) -> None:
        state = self._state
        sample = await workflow.execute_activity(
            activity.sample_week,
            SampleRequest(
                week=start.week,
                period_start=start.period_start,
                period_end=start.period_end,
                policy=self._policy,
            ),
            start_to_close_timeout=_STORE_TIMEOUT,
            retry_policy=activity.STORE_RETRY,
            summary=f"sample the typical tickets of {start.week}",
        )
        state.sample = sample.tickets
        state.candidates = sample.candidates
        state.root_cause_counts = sample.root_cause_counts
        state.surged_categories = sample.surged_categories
        self._sampled = True
        self._entry(
            ReviewEntryKind.STARTED,
            SYSTEM,
            text=f"{len(sample.tickets)} of {sample.candidates} candidate tickets sampled",
        )

    # ------------------------------------------------------------ follow-ups

    async def _sleep_until_next_chase(self) -> None:
        due = [
            chase[0]
            for follow_up in self._state.follow_ups
            if (chase := review_rules.next_chase(follow_up, self._policy)) is not None
        ]
        if not due:
            await workflow.wait_condition(lambda: self._woken)
            return
        wait = min(due) - workflow.now()
        if wait <= timedelta(0):
            return
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._woken,
                timeout=wait,
                timeout_summary=f"next follow-up chase {min(due):%Y-%m-%d %H:%M:%S}Z",
            )

    def _chase_due_follow_ups(self, now: datetime) -> None:
        for follow_up in self._state.follow_ups:
            chase = review_rules.next_chase(follow_up, self._policy)
            if chase is None or chase[0] > now:
                continue
            _, how = chase
            if how == "reminder" and now >= follow_up.due:
                how = "due"  # late (a worker was down): the early reminder is moot
            if how == "escalation":
                follow_up.stage = 3
                follow_up.escalated_at = now
                lead = self._policy.review.escalate_to
                self._entry(
                    ReviewEntryKind.ESCALATED, SYSTEM, follow_up=follow_up.number, text=lead
                )
                self._hand_off(
                    HandoffKind.REVIEW_ESCALATION,
                    follow_up,
                    [lead],
                    HandoffFacts(due_at=follow_up.due),
                )
                continue
            follow_up.stage = 1 if how == "reminder" else 2
            self._entry(ReviewEntryKind.REMINDED, SYSTEM, follow_up=follow_up.number, text=how)
            self._hand_off(
                HandoffKind.REVIEW_REMINDER,
                follow_up,
                [f"{AGENT_PREFIX}{follow_up.owner}"],
                # The chase: 1 due soon, 2 due (the staff templates say which).
                HandoffFacts(due_at=follow_up.due, number=follow_up.stage),
            )

    # ------------------------------------------------------------ the leads' actions

    def _validate(self, action: ReviewAction) -> None:
        if action.action_id is not None and action.action_id in self._state.seen_actions:
            known = self._state.action_fingerprints.get(action.action_id)
            if known is not None and known != _fingerprint(action):
                raise ApplicationError(
                    reused_action_id(action.action_id), type="ActionRejected", non_retryable=True
                )
            return  # sent again after a timeout: accepted, applied once
        if not self._sampled:
            raise ApplicationError(
                "the review is still taking its sample; try again in a moment",
                type="ReviewNotReady",
                non_retryable=True,
            )
        reason = review_rules.rejection(self._state, self._policy, action, workflow.now())
        if reason is not None:
            raise ApplicationError(reason, type="ActionRejected", non_retryable=True)

    def _accept(self, action: ReviewAction) -> ReviewView:
        seen = self._state.seen_actions
        if action.action_id is None or action.action_id not in seen:
            if action.action_id is not None:
                seen.append(action.action_id)
                del seen[:-_ACTION_IDS_KEPT]
                kept = self._state.action_fingerprints
                kept[action.action_id] = _fingerprint(action)
                for forgotten in kept.keys() - set(seen):
                    del kept[forgotten]
            handler: Callable[[Any], None] = getattr(
                self, f"_on_{review_action_name(type(action))}"
            )
            handler(action)
            self._woken = True
        return self._view()

    def _analysis(self, ticket_id: str) -> Analysis:
        return self._state.analyses.setdefault(ticket_id, Analysis(ticket_id=ticket_id))

    def _on_record_problem(self, action: RecordProblem) -> None:
        self._analysis(action.ticket_id).surface_problem = self._step(action.text, action.actor)
        self._entry(
            ReviewEntryKind.PROBLEM, action.actor, ticket_id=action.ticket_id, text=action.text
        )

    def _on_add_why(self, action: AddWhy) -> None:
        analysis = self._analysis(action.ticket_id)
        analysis.whys.append(self._step(action.text, action.actor))
        self._entry(
            ReviewEntryKind.WHY,
            action.actor,
            ticket_id=action.ticket_id,
            text=f"why {len(analysis.whys)}: {action.text}",
        )

    def _on_conclude(self, action: Conclude) -> None:
        state = self._state
        now = workflow.now()
        analysis = self._analysis(action.ticket_id)
        analysis.root_cause = action.root_cause
        analysis.concluded = self._step(action.root_cause, action.actor)
        for new in action.follow_ups:
            number = len(state.follow_ups) + 1
            state.follow_ups.append(
                FollowUp(
                    number=number,
                    ticket_id=action.ticket_id,
                    kind=new.kind,
                    description=new.description,
                    owner=new.owner,
                    due=new.due,
                    created_at=now,
                )
            )
            analysis.follow_ups.append(number)
        self._entry(
            ReviewEntryKind.CONCLUDED,
            action.actor,
            ticket_id=action.ticket_id,
            text=f"root cause {action.root_cause}; follow-ups "
            + ", ".join(f"#{n}" for n in analysis.follow_ups),
        )

    def _on_close_follow_up(self, action: CloseFollowUp) -> None:
        follow_up = self._state.follow_ups[action.number - 1]
        follow_up.status = FollowUpStatus(action.outcome)
        follow_up.note = action.note
        follow_up.closed_at = workflow.now()
        follow_up.closed_by = action.actor
        self._entry(
            ReviewEntryKind.FOLLOW_UP_CLOSED,
            action.actor,
            ticket_id=follow_up.ticket_id,
            follow_up=action.number,
            text=f"{action.outcome}: {action.note}",
        )

    @workflow.signal
    def delivery_failed(self, failure: DeliveryFailure) -> None:
        """A reminder the relay gave up on: kept in the record, shown in the report, and
        the supervisors told (workflows.delivery_failures)."""
        state = self._state
        failures = state.delivery_failures
        said = f"{failure.kind} to {failure.destination}: {failure.error}"
        if failure.dedupe_key in {f.dedupe_key for f in failures}:
            return  # delivered again by the relay: already recorded
        failures.append(FailedReminder(dedupe_key=failure.dedupe_key, said=said))
        del failures[:-_FAILURES_KEPT]
        self._entry(ReviewEntryKind.DELIVERY_FAILED, SYSTEM, text=said)
        # Stored with the entry by the `record_review` the entry brings about anyway:
        # the review's commands stay as they were.
        alert = delivery_failures.failure_alert(
            state.review_id,
            failure,
            self._policy,
            event_seq=state.next_seq - 1,
            tag=f"review-{state.week}",
            priority=Priority.B,
        )
        if alert is not None:
            self._handoffs.append(alert)
        self._woken = True

    @workflow.query
    def state(self) -> ReviewView:
        return self._view()

    # ------------------------------------------------------------ bookkeeping

    def _step(self, text: str, actor: Actor) -> Step:
        return Step(text=text, author=actor, at=workflow.now())

    def _entry(
        self,
        kind: ReviewEntryKind,
        actor: Actor,
        *,
        ticket_id: str | None = None,
        follow_up: int | None = None,
        text: str | None = None,
    ) -> None:
        state = self._state
        self._pending.append(
            ReviewEntry(
                review_id=state.review_id,
                seq=state.next_seq,
                occurred_at=workflow.now(),
                kind=kind,
                actor=actor,
                ticket_id=ticket_id,
                follow_up=follow_up,
                text=text,
            )
        )
        state.next_seq += 1

    def _hand_off(
        self, kind: HandoffKind, follow_up: FollowUp, recipients: list[str], facts: HandoffFacts
    ) -> None:
        """What to tell whom, as facts; the follow-up's description is the lead's words,
        carried as they are. The staff templates say it (activities.messages)."""
        state = self._state
        self._handoffs.append(
            Handoff(
                ticket_id=state.review_id,
                dedupe_key=f"{state.review_id}:{follow_up.number}:{kind.value}:{follow_up.stage}",
                event_seq=state.next_seq - 1,
                kind=kind,
                recipients=recipients,
                summary=follow_up.description,
                tag=f"review-{state.week}-{follow_up.kind.value}",
                priority=Priority.B,
                data=HandoffData(follow_up=follow_up.number, ticket_id=follow_up.ticket_id),
                facts=facts,
            )
        )

    async def _record(self) -> None:
        """Store the new entries, the state and the reminders; then publish to the UI."""
        while self._pending or self._handoffs or not self._stored_once:
            entries, handoffs = list(self._pending), list(self._handoffs)
            await workflow.execute_activity(
                activity.record_review,
                ReviewRecord(
                    review_id=self._state.review_id,
                    state=self._state,
                    entries=entries,
                    handoffs=handoffs,
                ),
                start_to_close_timeout=_STORE_TIMEOUT,
                retry_policy=activity.STORE_RETRY,
                summary=f"record {len(entries)} entries, {len(handoffs)} reminders",
            )
            del self._pending[: len(entries)]
            del self._handoffs[: len(handoffs)]
            self._stored_once = True
        workflow.set_current_details(self._details())

    def _details(self) -> str:
        state = self._state
        lines = [f"**weekly review {state.week}** · waiting for: {review_rules.waiting_for(state)}"]
        for follow_up in state.follow_ups:
            lines.append(
                f"- #{follow_up.number} {follow_up.kind.value} ({follow_up.status.value}), "
                f"due {follow_up.due:%Y-%m-%d %H:%M}Z"
            )
        return "\n".join(lines)

    def _view(self) -> ReviewView:
        state = self._state
        return ReviewView(
            review_id=state.review_id,
            week=state.week,
            complete=state.completed_at is not None,
            waiting_for=review_rules.waiting_for(state),
            state=state,
        )
