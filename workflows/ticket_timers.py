"""What the ticket's timers do (SPEC §1-§3): the first response answered or missed, the
SLA breached (and what the SLA clock's warnings and ladder hand off: the clock itself is
workflows.sla_clock), the daily progress check, the upgrade review after a day without a
breakthrough, and the customer's updates while a partner works.

Pure functions of the ticket's state, the policy and an instant: each moves the state on
(its counters, its next deadline) and returns what to record, in order.
"""

from __future__ import annotations

from datetime import datetime

from workflows import events as ev
from workflows import sla_clock
from workflows.contracts import HandoffFacts, HandoffKind, MessageKind, MessageParams, TicketState
from workflows.policy import (
    ServicePolicy,
    first_response_due,
    first_response_promise,
    first_response_window,
    next_daily_check,
    scaled,
    sla_target,
)
from workflows.ticket_record import Entry, HandOff, Say


def first_response_missed(state: TicketState, policy: ServicePolicy) -> list[Entry]:
    """No agent answered in time: an automatic reply, and a supervisor on standby."""
    intake = state.intake
    target = first_response_window(policy, intake.channel, intake.tier)
    promised = first_response_promise(policy, intake.channel, intake.tier)
    return [
        Entry(
            ev.FirstResponseBreached(target_seconds=target.total_seconds()),
            (
                Say(MessageKind.AUTO_REPLY, MessageParams(within=promised)),
                HandOff(
                    HandoffKind.SUPERVISOR_STANDBY,
                    [policy.supervisor_queue],
                    HandoffFacts(within=promised),
                ),
            ),
        )
    ]


def arm_progress_check(state: TicketState, policy: ServicePolicy, now: datetime) -> None:
    """The next daily check while a work order is open; none once all are done."""
    deadlines = state.deadlines
    if not any(not order.done for order in state.work_orders.values()):
        deadlines.progress_check = None
    else:
        # In policy time from the ticket's opening: a scaled day keeps one check.
        priority = state.classification.priority
        deadlines.progress_check = next_daily_check(policy, state.opened_at, now, priority)


def progress_check(state: TicketState, policy: ServicePolicy, now: datetime) -> list[Entry]:
    """Remind only the departments that have not posted since the previous check."""
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
    arm_progress_check(state, policy, now)
    if not silent:
        return []
    for department in silent:
        state.work_orders[department].reminded_at = now
    due = HandoffFacts(due_at=state.deadlines.progress_check)
    reminder = HandOff(HandoffKind.PROGRESS_REMINDER, silent, due)
    return [Entry(ev.ProgressReminded(departments=silent), (reminder,))]


def upgrade_review(state: TicketState, policy: ServicePolicy, now: datetime) -> list[Entry]:
    """No breakthrough for a while: the upgrade review board is convened, and again
    after as long if still none."""
    state.reviews_convened += 1
    state.escalated = True
    number = state.reviews_convened
    board = HandOff(
        HandoffKind.UPGRADE_REVIEW,
        list(policy.upgrade_review_board),
        HandoffFacts(within=policy.upgrade_review_after, number=number),
    )
    state.deadlines.upgrade_review = now + scaled(policy, policy.upgrade_review_after)
    return [Entry(ev.UpgradeReviewConvened(number=number), (board,))]


def partner_updates(state: TicketState, policy: ServicePolicy, now: datetime) -> list[Entry]:
    """While a partner works on it, the customer hears from us every so often."""
    every = policy.partner_update_every
    waiting = [p for p in state.partners.values() if p.answered_at is None]
    entries = []
    for engagement in waiting:
        engagement.updates_sent += 1
        number = engagement.updates_sent
        update = Say(MessageKind.PARTNER_PROGRESS, MessageParams(every=every, number=number))
        entries.append(
            Entry(ev.PartnerUpdateSent(partner=engagement.partner, number=number), (update,))
        )
    if waiting:
        state.deadlines.partner_update = now + scaled(policy, every)
    return entries


def first_responded(state: TicketState, policy: ServicePolicy, now: datetime) -> list[Entry]:
    """The first agent reply stops the first-response clock: in time if before the
    instant its clock (calendar or business) set."""
    intake = state.intake
    state.first_response_at = now
    state.deadlines.first_response = None
    priority = state.classification.priority
    due = first_response_due(policy, state.opened_at, intake.channel, intake.tier, priority)
    seconds = (now - state.opened_at).total_seconds()
    return [Entry(ev.FirstResponded(seconds=seconds, within_target=now <= due))]


def sla_breached(state: TicketState, policy: ServicePolicy, now: datetime) -> list[Entry]:
    """The SLA is broken: the escalation ladder starts (workflows.sla_clock.breach)."""
    state.sla_breached = True
    state.escalated = True
    breached = ev.SlaBreached(
        priority=state.classification.priority, milestone=state.sla_milestone, due_at=now
    )
    return [Entry(breached), *sla_told(state, policy, sla_clock.breach(state, policy, now))]


def sla_told(
    state: TicketState, policy: ServicePolicy, events: list[sla_clock.SlaEvent]
) -> list[Entry]:
    """What the SLA clock decided, for the record: a warning goes to the people it
    notifies, each escalation step to its rung of the ladder."""
    target = sla_target(policy, state.classification.priority)
    within, milestone = target.within, target.met_by
    entries = []
    for event in events:
        effects: tuple[HandOff, ...] = ()
        if isinstance(event, ev.SlaWarned):
            facts = HandoffFacts(
                due_at=event.sla_due_at, share=event.share, within=within, milestone=milestone
            )
            effects = (HandOff(HandoffKind.SLA_WARNING, event.notified, facts),)
        elif isinstance(event, ev.SlaEscalated):
            facts = HandoffFacts(within=within, milestone=milestone, number=event.level)
            effects = (HandOff(HandoffKind.SLA_ESCALATION, [event.to], facts),)
        entries.append(Entry(event, effects))
    return entries
