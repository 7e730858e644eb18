"""A ticket's conversation, read back in order from the event store.

Pure: `conversation(events, messages)` folds the ticket's events (the words people said,
`workflows.events`) and the customer messages of its outbox (what the system said on
its own: acknowledgements, automatic replies, confirmation requests, surveys) into one
list. A message that delivers its event's words (an agent's reply, a result, a
long-term plan) is shown once, as its event.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel, Field

from activities.outbox import OutboxMessage
from stores.erasure import ERASED
from workflows.contracts import CustomerMessage, MessageKind
from workflows.events import Audience, DomainEvent, EventType, TicketOpened
from workflows.primitives import SYSTEM, Actor

# Messages that deliver the words of their own event, shown once, as the event.
_DELIVERS_WORDS_OF = {
    MessageKind.AGENT_REPLY: EventType.AGENT_REPLIED,
    MessageKind.RESULT: EventType.RESOLVED,
    MessageKind.LONG_TERM_PLAN: EventType.CLOSED,
}


class ThreadEntry(BaseModel):
    seq: int | None = Field(description="The event that holds these words, if one does.")
    at: datetime
    actor: Actor
    kind: str = Field(description="The event type, or `message:<kind>` for a system message.")
    audience: Audience
    channel: str | None = Field(description="The customer's channel for what they read or wrote.")
    text: str


class Thread(BaseModel):
    ticket_id: str
    entries: list[ThreadEntry]
    erased: bool = Field(
        default=False,
        description=f"The customer's data was erased: what was said reads {ERASED}.",
    )


def conversation(
    events: list[DomainEvent],
    messages: list[OutboxMessage],
    render: Callable[[CustomerMessage], str],
    *,
    erased: bool = False,
) -> list[ThreadEntry]:
    """`render` says a message not delivered yet as it will be delivered. In an `erased`
    ticket, every event that could hold words but holds none now (the erasure cleared
    them) keeps its place, reading `[erased]`: the thread still shows who spoke when."""
    channel = next((e.data.channel.value for e in events if isinstance(e.data, TicketOpened)), None)
    entries: list[tuple[tuple[datetime, int, int], ThreadEntry]] = []
    worded: dict[int, EventType] = {}
    for event in events:
        words = event.data.words()
        audience = event.data.audience
        if words is None and erased and _could_hold_words(event):
            words = ERASED
        if words is None or audience is None:
            continue
        worded[event.seq] = event.type
        entry = ThreadEntry(
            seq=event.seq,
            at=event.occurred_at,
            actor=event.actor,
            kind=event.type.value,
            audience=audience,
            channel=channel if audience is Audience.CUSTOMER else None,
            text=words,
        )
        entries.append(((event.occurred_at, event.seq, 0), entry))
    at_seq = {event.seq: event.occurred_at for event in events}
    for position, message in enumerate(messages, start=1):
        delivers = _DELIVERS_WORDS_OF.get(MessageKind(message.kind))
        if delivers is not None and worded.get(message.event_seq or 0) is delivers:
            continue
        at = at_seq.get(message.event_seq or 0, message.created_at)
        entry = ThreadEntry(
            seq=message.event_seq,
            at=at,
            actor=SYSTEM,
            kind=f"message:{message.kind}",
            audience=Audience.CUSTOMER,
            channel=message.channel,
            text=message.rendered if message.rendered is not None else render(message.message),
        )
        # After the event that sent it; in outbox order among messages of one instant.
        entries.append(((at, message.event_seq or 0, position), entry))
    return [entry for _, entry in sorted(entries, key=lambda pair: pair[0])]


def _could_hold_words(event: DomainEvent) -> bool:
    """Whether the event would say something had its personal fields been kept: an agent's
    note or a customer's intake, not an automatic classification."""
    personal = event.data.personal_fields()
    kept = event.data.model_copy(update=dict.fromkeys(personal, ERASED))
    return bool(personal) and kept.words() is not None
