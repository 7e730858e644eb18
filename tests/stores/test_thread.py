"""The conversation as a pure fold of events and outbox messages."""

from __future__ import annotations

from datetime import timedelta

from activities.outbox import OutboxMessage
from stores.thread import conversation
from tests.activities.factories import AGENT, CUSTOMER, T0, event, new_ticket_id
from workflows.contracts import CustomerMessage, MessageKind
from workflows.events import Audience, EventType
from workflows.vocabulary import Channel


def message(event_seq: int | None, kind: str, text: str, minutes: int = 0) -> OutboxMessage:
    sent = CustomerMessage(
        ticket_id="t",
        dedupe_key=f"t:{event_seq}:{kind}",
        channel=Channel.EMAIL,
        customer_id="c-1",
        locale="en",
        kind=MessageKind(kind),
    )
    return OutboxMessage(
        event_seq=event_seq,
        kind=kind,
        channel="email",
        message=sent,
        rendered=text,
        created_at=T0 + timedelta(minutes=minutes),
    )


def unsent(message: CustomerMessage) -> str:
    raise AssertionError(f"{message.kind} was delivered: its words are known")


def test_words_in_order_with_who_and_for_whom() -> None:
    tid = new_ticket_id()
    events = [
        event(tid, 1, EventType.TICKET_OPENED, actor=CUSTOMER),
        event(tid, 2, EventType.ACKNOWLEDGED),
        event(tid, 3, EventType.AGENT_REPLIED, {"message": "hello"}, actor=AGENT),
        event(tid, 4, EventType.FIRST_RESPONDED, actor=AGENT),
        event(tid, 5, EventType.DISPATCHED, {"note": "check the logs"}, actor=AGENT),
    ]
    messages = [
        message(2, "acknowledgement", "we got it"),
        message(3, "agent_reply", "hello"),  # the event holds these words: shown once
    ]
    entries = conversation(events, messages, unsent)
    assert [(e.seq, e.kind, e.actor.role, e.audience, e.channel, e.text) for e in entries] == [
        (1, "ticket_opened", "customer", Audience.CUSTOMER, "email", "无法提现\n\n提現一直失敗"),
        (2, "message:acknowledgement", "system", Audience.CUSTOMER, "email", "we got it"),
        (3, "agent_replied", "agent", Audience.CUSTOMER, "email", "hello"),
        (5, "dispatched", "agent", Audience.INTERNAL, None, "check the logs"),
    ]


def test_replies_from_before_the_typed_record_are_read_from_the_outbox() -> None:
    tid = new_ticket_id()
    events = [event(tid, 1, EventType.TICKET_OPENED, actor=CUSTOMER)]
    messages = [
        message(None, "agent_reply", "first", minutes=5),
        message(None, "agent_reply", "second", minutes=9),
    ]
    texts = [e.text for e in conversation(events, messages, unsent)]
    assert texts[1:] == ["first", "second"]


def test_a_solved_answer_without_text_is_still_said() -> None:
    tid = new_ticket_id()
    events = [event(tid, 1, EventType.CUSTOMER_REPLIED, {"kind": "solved", "text": None})]
    [entry] = conversation(events, [], unsent)
    assert entry.text == "solved"


def test_a_reply_is_shown_once_only_as_its_own_event() -> None:
    """A reply tagged with an unrelated worded event (runs from before every reply was an
    event) is still shown."""
    tid = new_ticket_id()
    events = [event(tid, 2, EventType.CUSTOMER_REPLIED, {"text": "还是不行"}, actor=CUSTOMER)]
    texts = [e.text for e in conversation(events, [message(2, "agent_reply", "在查")], unsent)]
    assert texts == ["还是不行", "在查"]


def test_a_message_on_its_way_is_shown_as_it_will_be_said() -> None:
    tid = new_ticket_id()
    waiting = message(1, "acknowledgement", "").model_copy(update={"rendered": None})
    [entry] = conversation([], [waiting], lambda m: f"rendered {m.kind.value}")
    assert entry.text == "rendered acknowledgement"
    assert tid
