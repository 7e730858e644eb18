"""The building blocks every contract and event shares: the base model, text and id
constraints, who acted, and the problem snapshot (問題快照) the gateway captured.

Kept apart from `workflows.contracts` and `workflows.events` so both can use them
without importing each other.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

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
