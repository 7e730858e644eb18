"""The read model as a pure fold: no database needed."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from activities.projection import ProjectionError, TicketRow, project, project_all
from tests.activities.factories import T0, event, lifecycle, new_ticket_id
from workflows.events import EventType


def expected_after_lifecycle(ticket_id: str) -> TicketRow:
    def at(seq: int) -> datetime:
        return T0 + timedelta(minutes=seq)

    return TicketRow(
        ticket_id=ticket_id,
        status="closed",
        priority="E",
        category="technical_fault",
        topic="payment",
        channel="app_chat",
        tier="vip",
        customer_id="cust-42",
        tag="故障-支付-E級",
        assignee="agent-7",
        departments=("tech", "operations"),
        transfers=2,
        sla_due_at=T0 + timedelta(minutes=32),
        sla_breached=True,
        escalated=True,
        # `closed` carried no root cause, so the last resolution's stands.
        root_cause="流程漏洞-退款審核",
        reopen_count=1,
        first_response_seconds=12.5,
        opened_at=at(1),
        first_response_at=at(4),
        resolved_at=at(17),
        closed_at=at(21),
        close_reason="customer_confirmed",
        # Closed, so nothing is due any more.
        subject="无法提现",
        due_at=None,
        csat=4,
        nps=9,
        last_seq=21,
        updated_at=at(21),
    )


def test_full_lifecycle_gives_the_expected_row() -> None:
    ticket_id = new_ticket_id()
    assert project_all(None, lifecycle(ticket_id)) == expected_after_lifecycle(ticket_id)


def test_fold_order_is_seq_order_not_list_order() -> None:
    ticket_id = new_ticket_id()
    events = lifecycle(ticket_id)
    random.Random(7).shuffle(events)
    assert project_all(None, events) == expected_after_lifecycle(ticket_id)


def test_reapplying_events_changes_nothing() -> None:
    ticket_id = new_ticket_id()
    events = lifecycle(ticket_id)
    row = project_all(None, events)
    assert project_all(row, events) == row
    assert row is not None
    assert project(row, events[5]) is row


def test_each_step_of_the_lifecycle() -> None:
    ticket_id = new_ticket_id()
    rows: list[TicketRow] = []
    row: TicketRow | None = None
    for item in lifecycle(ticket_id):
        row = project(row, item)
        rows.append(row)

    opened = rows[0]
    assert (opened.status, opened.priority, opened.tag) == ("new", "A", "故障-支付-A級")
    assert opened.sla_due_at == T0 + timedelta(hours=4)
    assert opened.departments == ()
    assert rows[1].priority == "E"
    assert rows[1].sla_due_at == T0 + timedelta(minutes=32)
    assert rows[5].status == "in_progress"
    assert rows[6].departments == ("tech",)
    assert rows[8].departments == ("tech", "operations")
    assert not rows[9].sla_breached
    assert rows[10].sla_breached and rows[10].escalated
    assert rows[11].resolved_at == T0 + timedelta(minutes=12)
    assert rows[11].root_cause == "產品缺陷-支付流程"
    # Reopening withdraws the resolution until the next one.
    assert rows[14].reopen_count == 1
    assert rows[14].resolved_at is None
    assert rows[16].resolved_at == T0 + timedelta(minutes=17)


def test_first_event_other_than_opened_still_creates_a_row() -> None:
    ticket_id = new_ticket_id()
    row = project(None, event(ticket_id, 1, EventType.DUPLICATE_INTAKE, {"duplicate_of": "T-1"}))
    assert row.ticket_id == ticket_id
    assert row.status == "new"
    assert row.last_seq == 1
    assert row.updated_at == T0 + timedelta(minutes=1)


def test_event_of_another_ticket_is_refused() -> None:
    row = project(None, event(new_ticket_id(), 1, EventType.TICKET_OPENED))
    with pytest.raises(ProjectionError):
        project(row, event(new_ticket_id(), 2, EventType.ASSIGNED, {"agent_id": "a"}))


def test_due_at_is_the_sla_still_to_keep() -> None:
    """The list's attention order: the SLA instant while unmet and open, then nothing."""
    ticket_id = new_ticket_id()
    due = T0 + timedelta(hours=24)
    row = project(
        None,
        event(ticket_id, 1, EventType.TICKET_OPENED, {"priority": "B", "sla_due_at": due}),
    )
    assert (row.due_at, row.subject) == (due, "无法提现")
    # Raised to A: the promise moves with the priority.
    sooner = T0 + timedelta(hours=4)
    row = project(row, event(ticket_id, 2, EventType.CLASSIFIED, {"sla_due_at": sooner}))
    assert (row.priority, row.due_at, row.sla_due_at) == ("A", sooner, sooner)
    row = project(row, event(ticket_id, 3, EventType.MILESTONE_RECORDED, {"meets_sla": False}))
    assert row.due_at == sooner
    row = project(row, event(ticket_id, 4, EventType.MILESTONE_RECORDED, {"meets_sla": True}))
    assert row.due_at is None
    assert row.sla_due_at == sooner


def test_closing_takes_a_ticket_off_the_attention_order() -> None:
    ticket_id = new_ticket_id()
    row = project(None, event(ticket_id, 1, EventType.TICKET_OPENED))
    assert row.due_at is not None
    row = project(row, event(ticket_id, 2, EventType.CLOSED))
    assert row.due_at is None


def test_only_the_first_response_counts() -> None:
    ticket_id = new_ticket_id()
    row = project(None, event(ticket_id, 1, EventType.FIRST_RESPONDED, {"seconds": 20}))
    row = project(row, event(ticket_id, 2, EventType.FIRST_RESPONDED, {"seconds": 99.0}))
    assert row.first_response_seconds == 20.0
    assert row.first_response_at == T0 + timedelta(minutes=1)


def test_upgrade_review_escalates_without_breaching() -> None:
    ticket_id = new_ticket_id()
    row = project(None, event(ticket_id, 1, EventType.UPGRADE_REVIEW_CONVENED, {"number": 1}))
    assert row.escalated
    assert not row.sla_breached


def test_closed_sets_status_and_its_root_cause_wins() -> None:
    ticket_id = new_ticket_id()
    row = project(
        None, event(ticket_id, 1, EventType.RESOLVED, {"root_cause": "產品缺陷-支付流程"})
    )
    row = project(
        row,
        event(
            ticket_id,
            2,
            EventType.CLOSED,
            {"reason": "long_term_plan", "root_cause": "產品缺陷-會員權益"},
        ),
    )
    assert (row.status, row.close_reason, row.root_cause) == (
        "closed",
        "long_term_plan",
        "產品缺陷-會員權益",
    )
    assert row.closed_at == T0 + timedelta(minutes=2)


def test_values_are_coerced_to_column_types() -> None:
    ticket_id = new_ticket_id()
    row = project(None, event(ticket_id, 1, EventType.CSAT_RECORDED, {"score": "5"}))
    assert row.csat == 5
    # A naive time is UTC, not the database server's local time.
    row = project(
        row, event(ticket_id, 2, EventType.CLASSIFIED, {"sla_due_at": "2025-03-03T05:00:00"})
    )
    assert row.sla_due_at == datetime(2025, 3, 3, 5, tzinfo=UTC)


def test_values_of_the_wrong_shape_raise_value_error() -> None:
    ticket_id = new_ticket_id()
    with pytest.raises(ValueError):
        project(None, event(ticket_id, 1, EventType.CSAT_RECORDED, {"score": "excellent"}))
    with pytest.raises(ValueError):
        project(None, event(ticket_id, 1, EventType.TICKET_OPENED, {"sla_due_at": "soon"}))


def test_the_workspace_columns_follow_the_first_reply_and_the_warnings() -> None:
    """The queue's countdown and "breaching soon": the first reply owed until one is sent
    (or the result is), the first warning of the SLA still kept until it is met."""
    ticket_id = new_ticket_id()
    reply_by = T0 + timedelta(seconds=30)
    row = project(
        None,
        event(ticket_id, 1, EventType.TICKET_OPENED, {"first_response_due_at": reply_by}),
    )
    assert (row.first_response_due_at, row.sla_warned_at) == (reply_by, None)
    row = project(row, event(ticket_id, 2, EventType.SLA_WARNED, {"notified": ["agent-7"]}))
    warned = T0 + timedelta(minutes=2)
    assert row.sla_warned_at == warned
    row = project(row, event(ticket_id, 3, EventType.SLA_WARNED, {"share": 0.9}))
    assert row.sla_warned_at == warned  # the first warning is when it began
    row = project(row, event(ticket_id, 4, EventType.RESOLVED))
    assert row.first_response_due_at is None  # the result reached the customer
    row = project(row, event(ticket_id, 5, EventType.MILESTONE_RECORDED, {"meets_sla": True}))
    assert row.sla_warned_at is None
