"""The building blocks every contract and event shares: the base model, text and id
constraints, who acted, and the problem snapshot (問題快照) the gateway captured.

Kept apart from `workflows.contracts` and `workflows.events` so both can use them
without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from workflows.vocabulary import Role

# PostgreSQL cannot store a NUL character in text: refused here, with the field named,
# rather than failing the append that would carry it.
NO_NUL = r"^[^\x00]*$"
NonEmpty = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000, pattern=NO_NUL)
]
Identifier = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=NO_NUL)
]


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Actor(Contract):
    """Who did something. `id` is an opaque staff or system id, never a name or phone."""

    id: Identifier
    role: Role = Role.AGENT


SYSTEM = Actor(id="ticketflow", role=Role.SYSTEM)


class ContextSnapshot(Contract):
    """What the gateway captured around the problem (問題快照), not asked of the user."""

    device_model: str | None = None
    os_version: str | None = None
    app_version: str | None = None
    operation_path: list[str] = Field(default_factory=list)
    occurred_at: datetime | None = None
    ip: str | None = None
    user_agent: str | None = None
    region: str | None = None
    affected_users: int | None = Field(default=None, ge=0)


A = TypeVar("A")
R = TypeVar("R")


def typed_update(
    accept: Callable[[A], R], argument: type[Any], result: type[R]
) -> Callable[[A], R]:
    """One update handler per action of a table, all calling `accept`: the SDK decodes an
    update's argument into the type its handler declares, so each declares its own."""

    def update(sent: A) -> R:
        return accept(sent)

    update.__annotations__ = {"sent": argument, "return": result}
    return update
