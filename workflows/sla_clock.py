"""The SLA clock: one promise counted on a clock, paused while the ticket waits on the
customer, with warnings before it breaches and an escalation ladder after (SPEC §2 and
"Calendars").

Every rule here is a pure function of the ticket's state, the policy and an instant: no
Temporal, no clock of its own, no I/O. A rule moves the SLA part of the state it is given
on (the clock, its deadlines, its counters) and returns the events to record, in order.
The ticket records them; the two that tell someone (`SlaWarned`, `SlaEscalated`) name
whom, and the ticket hands each of those to the people it names.

The ticket starts the clock at opening. `state.sla_clock` stays optional in the state's
model, so these rules do nothing without one: a state the `state` query returns is read
by clients of every build.

Imported into workflows through `imports_passed_through()`, like `workflows.policy`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from workflows import events as ev
from workflows.policy import (
    AGENT_PREFIX,
    Clock,
    ServicePolicy,
    clock_add,
    clock_between,
    clocks_for,
    is_raise,
    sla_target,
)
from workflows.vocabulary import Priority, TicketStatus

if TYPE_CHECKING:
    # Annotations only: the ticket's state holds an SlaClock, so contracts imports this.
    from workflows.contracts import TicketState

# What the clock records.
SlaEvent = ev.SlaPaused | ev.SlaResumed | ev.SlaWarned | ev.SlaEscalated


class Pause(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: datetime
    end: datetime | None = None
    # The status that paused the clock (waiting_on_customer, waiting_on_partner).
    reason: str


class SlaClock(BaseModel):
    """One SLA promise: counted from an instant, on a clock, minus the time it was paused."""

    model_config = ConfigDict(extra="forbid")

    counts_from: datetime
    within: timedelta
    clock: Clock
    pauses: list[Pause] = Field(default_factory=list)

    @property
    def paused_since(self) -> datetime | None:
        if self.pauses and self.pauses[-1].end is None:
            return self.pauses[-1].start
        return None


# ---------------------------------------------------------------- the clock's arithmetic


def paused_time(policy: ServicePolicy, anchor: datetime, sla: SlaClock, now: datetime) -> timedelta:
    """The clock's time spent paused since the promise began counting (so a re-based
    promise keeps the pauses after its new start)."""
    return sum(
        (
            clock_between(policy, sla.clock, anchor, max(p.start, sla.counts_from), p.end or now)
            for p in sla.pauses
        ),
        timedelta(0),
    )


def sla_clock_due(
    policy: ServicePolicy, anchor: datetime, sla: SlaClock, now: datetime, share: float = 1.0
) -> datetime | None:
    """When `share` of the promise is used up (1.0: the breach); None while paused."""
    if sla.paused_since is not None:
        return None
    used = sla.within * share + paused_time(policy, anchor, sla, now)
    return clock_add(policy, sla.clock, anchor, sla.counts_from, used)


# ---------------------------------------------------------------- the ticket's clock


def clock_from(
    state: TicketState,
    policy: ServicePolicy,
    counts_from: datetime,
    pauses: list[Pause] | None = None,
) -> SlaClock:
    """The promise of the ticket's priority, counted from `counts_from`."""
    priority = state.classification.priority
    return SlaClock(
        counts_from=counts_from,
        within=sla_target(policy, priority).within,
        clock=clocks_for(policy, priority).sla,
        pauses=pauses or [],
    )


def arm(state: TicketState, policy: ServicePolicy, now: datetime) -> None:
    """The breach and the next warning, from the clock (none while it is paused)."""
    deadlines = state.deadlines
    sla = state.sla_clock
    if sla is None or state.sla_met_at is not None or state.sla_breached:
        deadlines.sla = deadlines.sla_warning = None
        return
    anchor = state.opened_at
    deadlines.sla = sla_clock_due(policy, anchor, sla, now)
    warnings = policy.sla_warnings
    deadlines.sla_warning = (
        sla_clock_due(policy, anchor, sla, now, share=warnings[state.sla_warnings_sent].at)
        if state.sla_warnings_sent < len(warnings)
        else None
    )


def follow_pause(state: TicketState, policy: ServicePolicy, now: datetime) -> list[SlaEvent]:
    """Waiting on the customer (or, if the policy says so, a partner) stops the SLA
    clock; anything else starts it again. Paused time is recorded on resuming."""
    sla = state.sla_clock
    closed = state.status is TicketStatus.CLOSED
    if sla is None or state.sla_met_at is not None or state.sla_breached or closed:
        return []
    pausing = state.status is TicketStatus.WAITING_ON_CUSTOMER or (
        policy.pause_sla_on_partner and state.status is TicketStatus.WAITING_ON_PARTNER
    )
    due = state.deadlines.sla
    if pausing and sla.paused_since is None and (due is None or due > now):
        # (A ticket already past its SLA breaches first: its timer has not been
        # handled yet, and a pause must not hide it.)
        sla.pauses.append(Pause(start=now, reason=state.status.value))
        arm(state, policy, now)
        return [ev.SlaPaused(reason=state.status)]
    if not pausing and sla.paused_since is not None:
        resumed = end_pause(state, policy, now)
        arm(state, policy, now)
        return resumed
    return []


def end_pause(state: TicketState, policy: ServicePolicy, now: datetime) -> list[SlaEvent]:
    """Close the open pause, and record how long it was (on the SLA's clock)."""
    sla = state.sla_clock
    if sla is None or sla.paused_since is None:
        return []
    pause = sla.pauses[-1]
    pause.end = now
    anchor = state.opened_at
    this = clock_between(policy, sla.clock, anchor, max(pause.start, sla.counts_from), now)
    total = paused_time(policy, anchor, sla, now)
    met_or_closed = state.sla_met_at is not None or state.closed_at is not None
    return [
        ev.SlaResumed(
            paused_seconds=this.total_seconds(),
            total_paused_seconds=total.total_seconds(),
            sla_due_at=None if met_or_closed else sla_clock_due(policy, anchor, sla, now),
        )
    ]


def warn(state: TicketState, policy: ServicePolicy, now: datetime) -> list[SlaEvent]:
    """Part of the SLA is used: the assignee first, the supervisors later (policy)."""
    warnings = policy.sla_warnings
    due = state.deadlines.sla
    if state.sla_warnings_sent >= len(warnings) or due is None:
        return []
    warning = warnings[state.sla_warnings_sent]
    state.sla_warnings_sent += 1
    recipients = (
        [f"{AGENT_PREFIX}{state.assignee}"]
        if warning.notify == "assignee" and state.assignee is not None
        else [policy.supervisor_queue]
    )
    arm(state, policy, now)
    return [ev.SlaWarned(share=warning.at, sla_due_at=due, notified=recipients)]


def breach(state: TicketState, policy: ServicePolicy, now: datetime) -> list[SlaEvent]:
    """The promise is broken: no more warnings, and the ladder starts from here."""
    state.sla_breached_at = now
    state.deadlines.sla_warning = None
    return climb(state, policy, now)


def climb(state: TicketState, policy: ServicePolicy, now: datetime) -> list[SlaEvent]:
    """After a breach, each step of the ladder on its own timer, on the SLA's clock
    (a business-hours SLA escalates in business hours, not at midnight)."""
    breached_at = state.sla_breached_at
    ladder = policy.escalation_ladder
    if breached_at is None or state.sla_met_at is not None:
        return []
    clock = state.sla_clock.clock if state.sla_clock is not None else Clock.CALENDAR
    climbed: list[SlaEvent] = []
    while state.escalation_level < len(ladder):
        step = ladder[state.escalation_level]
        due = clock_add(policy, clock, state.opened_at, breached_at, step.after)
        if due > now:
            state.deadlines.escalation = due
            return climbed
        state.escalation_level += 1
        climbed.append(ev.SlaEscalated(level=state.escalation_level, to=step.to))
    state.deadlines.escalation = None
    return climbed


def rebase(
    state: TicketState, policy: ServicePolicy, before: Priority, after: Priority, now: datetime
) -> datetime | None:
    """The SLA of a new priority (already in the state): a raised one counts from now
    (or from intake, as the policy says), a lowered one from intake; pauses since then
    are kept. Returns the instant it counts from (None: nothing left to count)."""
    if state.sla_breached or state.sla_clock is None:
        return None
    from_now = is_raise(before, after) and policy.raised_priority_counts_from == "reclassification"
    # Otherwise from intake: a raise then a lowering never stretches the promise.
    counts_from = now if from_now else state.opened_at
    state.sla_clock = clock_from(state, policy, counts_from, state.sla_clock.pauses)
    state.sla_warnings_sent = 0
    arm(state, policy, now)
    return counts_from


def paused(
    state: TicketState, policy: ServicePolicy, now: datetime
) -> tuple[datetime | None, timedelta]:
    """Since when the SLA clock is paused (None: running), and its paused time."""
    sla = state.sla_clock
    if sla is None:
        return None, timedelta(0)
    total = paused_time(policy, state.opened_at, sla, now)
    running = state.sla_met_at is not None or state.sla_breached
    return (None if running else sla.paused_since), total
