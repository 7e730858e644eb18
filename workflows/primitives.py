"""The building blocks every contract and event shares: the base model, text and id
constraints, who acted, and the problem snapshot (問題快照) the gateway captured.

Kept apart from `workflows.contracts` and `workflows.events` so both can use them
without importing each other.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)
from temporalio import workflow

from workflows.vocabulary import Role

# Bidi embeddings, overrides and isolates reorder what a reader sees ("Trojan source"):
# no text needs them to be understood.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean_text(value: object) -> object:
    """Text as people meant it: NFC, line breaks as \\n, and no control characters
    but line breaks and tabs (an ESC would drive a terminal; NUL cannot be stored in
    PostgreSQL; a lone surrogate cannot be encoded at all), nor bidi overrides."""
    if not isinstance(value, str):
        return value  # pydantic refuses it as "not a string"
    text = unicodedata.normalize("NFC", value.replace("\r\n", "\n").replace("\r", "\n"))
    return "".join(
        char
        for char in text
        if char in "\n\t"
        or (unicodedata.category(char) not in ("Cc", "Cs") and char not in _BIDI_CONTROLS)
    )


# Every free text that enters (subjects, messages, notes, answers) is cleaned: a text
# type is `Annotated[str, StringConstraints(...), Cleaned]`, in that order, so that its
# length and blankness are judged on the cleaned text.
Cleaned = BeforeValidator(clean_text)
CleanText = Annotated[str, Cleaned]
NonEmpty = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000), Cleaned
]
Subject = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Cleaned
]
# Text that may be empty (a customer's reply that only scores).
Text = Annotated[str, StringConstraints(max_length=4000), Cleaned]

# Ids people and systems send (customers, staff, departments, partners, keys): printable
# ASCII without spaces, so two ids that look alike are alike: no zero-width characters,
# bidi overrides, accents or bytes read as Latin-1. (Punctuation stays: gateways' keys
# carry `/`, `+`, `=`, `\` or `<...@...>`.)
ID_ALPHABET = r"^[!-~]+$"
_ID = re.compile(ID_ALPHABET)


def check_identifier(value: str) -> str:
    if not _ID.match(value):
        raise ValueError(
            "an id is printable ASCII without spaces "
            "(no accents, zero-width, direction or control characters)"
        )
    return value


Identifier = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128),
    AfterValidator(check_identifier),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 128, "pattern": ID_ALPHABET}),
]
# An actor's id as the event store has kept it since before the alphabet: read back from
# every stored event, so it stays readable. New ones come from an API key's name or a
# staff id the API checked (Identifier).
RecordedId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=r"^[^\x00]*$"),
]


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Actor(Contract):
    """Who did something. `id` is an opaque staff or system id, never a name or phone."""

    id: RecordedId
    role: Role = Role.AGENT


SYSTEM = Actor(id="ticketflow", role=Role.SYSTEM)


class ContextSnapshot(Contract):
    """What the gateway captured around the problem (問題快照), not asked of the user."""

    device_model: CleanText | None = None
    os_version: CleanText | None = None
    app_version: CleanText | None = None
    operation_path: list[CleanText] = Field(default_factory=list)
    occurred_at: datetime | None = None
    ip: CleanText | None = None
    user_agent: CleanText | None = None
    region: CleanText | None = None
    affected_users: int | None = Field(default=None, ge=0)


A = TypeVar("A")
R = TypeVar("R")
S = TypeVar("S")
P = TypeVar("P")

# A rule of a table keyed by action class: why the action does not fit (None: it fits).
Rule = Callable[[S, P, object, datetime], str | None]


def rule_for(
    kind: type[A], check: Callable[[S, P, A, datetime], str | None]
) -> tuple[type[A], Rule[S, P]]:
    """One entry of such a table: `check` declares the one action class it reads, and the
    table (looked up by the action's own class) only ever hands it that class."""

    def checked(state: S, policy: P, action: object, now: datetime) -> str | None:
        assert isinstance(action, kind), f"{type(action).__name__} is no {kind.__name__}"
        return check(state, policy, action, now)

    return kind, checked


def typed_update(
    accept: Callable[[A], R], argument: type[Any], result: type[R]
) -> Callable[[A], R]:
    """One update handler per action of a table, all calling `accept`: the SDK decodes an
    update's argument into the type its handler declares, so each declares its own."""

    def update(sent: A) -> R:
        return accept(sent)

    update.__annotations__ = {"sent": argument, "return": result}
    return update


def handle_actions(
    actions: Iterable[type[Any]],
    name_of: Callable[[type[Any]], str],
    accept: Callable[[A], R],
    validate: Callable[[A], None],
    result: type[R],
) -> None:
    """Register one validated update per action of a table (a ticket's, a review's)."""
    for action in actions:
        workflow.set_update_handler(
            name_of(action), typed_update(accept, action, result), validator=validate
        )


def fingerprint(action: BaseModel, kind: str, leave_out: Iterable[str] = ()) -> str:
    """What an action asks, whoever sends it: an action id seen again with the same
    fingerprint is a resend, with another it is a different action (a caller's mistake)."""
    asked = action.model_dump_json(exclude={"actor", "action_id", *leave_out})
    return f"{kind}:{hashlib.sha256(asked.encode()).hexdigest()[:16]}"


def reused_action_id(action_id: str) -> str:
    return f"action_id {action_id} was already used for another action; use a new id"
