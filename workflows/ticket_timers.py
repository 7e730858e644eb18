"""What the ticket's routine timers do (SPEC §1 and §3): the first response missed, the
daily progress check, the upgrade review after a day without a breakthrough, and the
customer's updates while a partner works. (The SLA's own timers are workflows.sla_clock.)

Pure functions of the ticket's state, the policy and an instant: each moves the state on
(its counters, its next deadline) and returns what to record, in order.
"""

from __future__ import annotations

from datetime import datetime

from workflows import events as ev
from workflows.contracts import HandoffFacts, HandoffKind, MessageKind, MessageParams, TicketState
from workflows.policy import (
    ServicePolicy,
    first_response_promise,
    first_response_window,
    next_daily_check,
    next_progress_check,
    scaled,
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


def arm_progress_check(
    state: TicketState, policy: ServicePolicy, now: datetime, *, calendar: bool
) -> None:
    """The next daily check while a work order is open; none once all are done."""
    deadlines = state.deadlines
    if not any(not order.done for order in state.work_orders.values()):
        deadlines.progress_check = None
    elif calendar:
        # In policy time from the ticket's opening: a scaled day keeps one check.
        priority = state.classification.priority
        deadlines.progress_check = next_daily_check(policy, state.opened_at, now, priority)
    else:
        deadlines.progress_check = next_progress_check(policy, now)


def progress_check(
    state: TicketState, policy: ServicePolicy, now: datetime, *, calendar: bool
) -> list[Entry]:
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
    arm_progress_check(state, policy, now, calendar=calendar)
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
