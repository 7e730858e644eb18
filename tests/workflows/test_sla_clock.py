"""The SLA clock's rules, called directly: pure functions of the state, the policy and an
instant, so no Temporal server runs here. (test_calendar.py drives the same rules
through a ticket on the time-skipping server.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workflows import events as ev
from workflows import sla_clock
from workflows.contracts import Classification, HandoffKind, Intake, TicketState
from workflows.policy import ServicePolicy, sla_target
from workflows.ticket_record import HandOff
from workflows.ticket_timers import sla_breached, sla_told
from workflows.vocabulary import Category, Channel, Priority, TicketStatus, Topic

POLICY = ServicePolicy()  # calendar clocks, B promised in 24 h, warnings at 75 % and 90 %
OPENED = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def ticket(priority: Priority = Priority.B) -> TicketState:
    """A ticket just opened at OPENED, its SLA clock started as the workflow starts it."""
    state = TicketState(
        ticket_id="T-1",
        intake=Intake(
            idempotency_key="k",
            channel=Channel.EMAIL,
            customer_id="c",
            subject="s",
            description="d",
        ),
        opened_at=OPENED,
        classification=Classification(
            category=Category.TECHNICAL_FAULT, topic=Topic.OTHER, priority=priority, reason="t"
        ),
        tag="t",
        sla_milestone=sla_target(POLICY, priority).met_by,
    )
    state.sla_clock = sla_clock.clock_from(state, POLICY, OPENED)
    sla_clock.arm(state, POLICY, OPENED)
    return state


def test_a_new_clock_arms_the_breach_and_the_first_warning() -> None:
    state = ticket()

    assert state.deadlines.sla == OPENED + 24 * HOUR
    assert state.deadlines.sla_warning == OPENED + 18 * HOUR  # 75 % of 24 h


def test_waiting_on_the_customer_pauses_the_clock_and_the_answer_moves_the_breach() -> None:
    state = ticket()
    state.status = TicketStatus.WAITING_ON_CUSTOMER

    paused = sla_clock.follow_pause(state, POLICY, OPENED + HOUR)

    assert paused == [ev.SlaPaused(reason=TicketStatus.WAITING_ON_CUSTOMER)]
    assert state.deadlines.sla is None and state.deadlines.sla_warning is None
    assert sla_clock.paused(state, POLICY, OPENED + 2 * HOUR) == (OPENED + HOUR, HOUR)
    # Still waiting: nothing more to record.
    assert sla_clock.follow_pause(state, POLICY, OPENED + 2 * HOUR) == []

    state.status = TicketStatus.IN_PROGRESS
    resumed = sla_clock.follow_pause(state, POLICY, OPENED + 3 * HOUR)

    due = OPENED + 26 * HOUR  # two hours paused
    assert resumed == [
        ev.SlaResumed(paused_seconds=7200.0, total_paused_seconds=7200.0, sla_due_at=due)
    ]
    assert state.deadlines.sla == due
    assert state.deadlines.sla_warning == OPENED + 20 * HOUR


def test_a_ticket_past_its_breach_is_not_paused() -> None:
    state = ticket()
    state.status = TicketStatus.WAITING_ON_CUSTOMER

    assert sla_clock.follow_pause(state, POLICY, OPENED + 25 * HOUR) == []
    assert state.deadlines.sla == OPENED + 24 * HOUR


def test_warnings_go_to_the_assignee_then_the_supervisors() -> None:
    state = ticket()
    state.assignee = "a-7"

    first = sla_clock.warn(state, POLICY, OPENED + 18 * HOUR)

    assert first == [
        ev.SlaWarned(share=0.75, sla_due_at=OPENED + 24 * HOUR, notified=["agent:a-7"])
    ]
    assert state.deadlines.sla_warning == OPENED + timedelta(hours=21, minutes=36)  # 90 %

    second = sla_clock.warn(state, POLICY, OPENED + timedelta(hours=21, minutes=36))

    assert [w.notified for w in second if isinstance(w, ev.SlaWarned)] == [["customer_service"]]
    assert state.deadlines.sla_warning is None
    assert sla_clock.warn(state, POLICY, OPENED + 23 * HOUR) == []


def test_a_warning_hands_off_to_the_people_it_notifies() -> None:
    state = ticket()
    entries = sla_told(state, POLICY, sla_clock.warn(state, POLICY, OPENED + 18 * HOUR))

    (entry,) = entries
    (handoff,) = entry.effects
    assert isinstance(handoff, HandOff) and handoff.kind is HandoffKind.SLA_WARNING
    assert handoff.recipients == ["customer_service"]  # nobody assigned yet
    assert handoff.facts.share == 0.75
    assert handoff.facts.due_at == OPENED + 24 * HOUR


def test_a_breach_climbs_the_ladder_one_step_at_a_time() -> None:
    state = ticket()
    breach = OPENED + 24 * HOUR

    entries = sla_breached(state, POLICY, breach)

    assert [e.event for e in entries] == [
        ev.SlaBreached(priority=Priority.B, milestone=state.sla_milestone, due_at=breach),
        ev.SlaEscalated(level=1, to="customer_service"),  # the first step at once
    ]
    assert state.sla_breached and state.escalated and state.sla_breached_at == breach
    assert state.deadlines.escalation == breach + 2 * HOUR
    assert state.deadlines.sla_warning is None

    assert sla_clock.climb(state, POLICY, breach + HOUR) == []  # not yet
    assert sla_clock.climb(state, POLICY, breach + 2 * HOUR) == [
        ev.SlaEscalated(level=2, to="service_lead")
    ]
    assert state.deadlines.escalation is None


def test_a_raised_priority_counts_from_now_and_keeps_the_pauses() -> None:
    state = ticket()
    state.status = TicketStatus.WAITING_ON_CUSTOMER
    sla_clock.follow_pause(state, POLICY, OPENED + HOUR)
    state.status = TicketStatus.IN_PROGRESS
    sla_clock.follow_pause(state, POLICY, OPENED + 2 * HOUR)
    sla_clock.warn(state, POLICY, OPENED + 3 * HOUR)
    now = OPENED + 3 * HOUR
    state.classification = state.classification.model_copy(update={"priority": Priority.A})

    counts_from = sla_clock.rebase(state, POLICY, Priority.B, Priority.A, now)

    assert counts_from == now
    assert state.sla_clock is not None and len(state.sla_clock.pauses) == 1
    assert state.sla_warnings_sent == 0  # the new promise warns again
    # The pause ended before the new start: 4 h from now, nothing added.
    assert state.deadlines.sla == now + 4 * HOUR


def test_a_lowered_priority_counts_from_intake() -> None:
    state = ticket(Priority.A)
    state.classification = state.classification.model_copy(update={"priority": Priority.B})

    counts_from = sla_clock.rebase(state, POLICY, Priority.A, Priority.B, OPENED + HOUR)

    assert counts_from == OPENED
    assert state.deadlines.sla == OPENED + 24 * HOUR


def test_a_breached_promise_is_not_rebased() -> None:
    state = ticket()
    sla_breached(state, POLICY, OPENED + 24 * HOUR)

    assert sla_clock.rebase(state, POLICY, Priority.B, Priority.A, OPENED + 25 * HOUR) is None
