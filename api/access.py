"""Who may call what: API keys (stored only as SHA-256), roles, and the route rules.

A key is a random secret handed to one caller (`ticketflow keys create`); configuration
holds its SHA-256 and a role. Roles:

| role                | may                                                             |
|---------------------|-----------------------------------------------------------------|
| `backend`           | open tickets, post customer replies, read one ticket            |
| `agent`             | everything an agent does: open, act, reply for a customer, read |
| `operator`          | what an agent may, to watch and repair                          |
| `department:<name>` | post progress on its own work orders; read tickets of its work  |
| `partner:<name>`    | call back (signed) for its own engagements                      |
| `manager`           | read the service-health indicators (SPEC §5)                    |
"""

from __future__ import annotations

import hashlib
import json
import secrets
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from api.settings import ApiKeyEntry, ApiSettings, ConfigurationError
from workflows.primitives import Actor
from workflows.vocabulary import Role as ActorRole

KEY_PREFIX = "tfk_"


class RoleKind(StrEnum):
    BACKEND = "backend"
    AGENT = "agent"
    OPERATOR = "operator"
    MANAGER = "manager"
    DEPARTMENT = "department"
    PARTNER = "partner"
    # Edits the knowledge base (FAQ entries and reply scripts).
    KNOWLEDGE = "knowledge"


# Keys held by the service desk's own staff consoles: they may name the person acting.
STAFF = frozenset({RoleKind.AGENT, RoleKind.OPERATOR})

# The role a caller's actions carry into the ticket's events.
_ACTOR_ROLE = {
    RoleKind.BACKEND: ActorRole.SYSTEM,
    RoleKind.AGENT: ActorRole.AGENT,
    RoleKind.OPERATOR: ActorRole.SUPERVISOR,
    RoleKind.MANAGER: ActorRole.SUPERVISOR,
    RoleKind.DEPARTMENT: ActorRole.DEPARTMENT,
    RoleKind.PARTNER: ActorRole.PARTNER,
    RoleKind.KNOWLEDGE: ActorRole.SUPERVISOR,
}


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the key's name, its role, and the role's scope (the
    department or partner name) if it has one."""

    name: str
    kind: RoleKind
    scope: str | None = None

    @property
    def role(self) -> str:
        return self.kind.value if self.scope is None else f"{self.kind.value}:{self.scope}"

    def actor(self, actor_id: str | None = None) -> Actor:
        """The actor recorded on the ticket: for staff keys, the staff id sent along (a
        console acting for one agent); otherwise, and by default, the key's own name. A
        department or partner key can never record another identity."""
        named = actor_id if actor_id and self.kind in STAFF else None
        return Actor(id=named or self.name, role=_ACTOR_ROLE[self.kind])


def parse_role(role: str) -> tuple[RoleKind, str | None]:
    kind, _, scope = role.partition(":")
    return RoleKind(kind), scope or None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh key: 256 random bits, URL-safe, recognisable by its prefix in a leak scan."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyRing:
    """The configured keys, looked up by the SHA-256 of what the caller sent."""

    def __init__(self, entries: Iterable[ApiKeyEntry]) -> None:
        self._callers: dict[str, Caller] = {}
        for entry in entries:
            kind, scope = parse_role(entry.role)
            if entry.sha256 in self._callers:
                raise ConfigurationError(f"API key {entry.name!r} is configured twice")
            self._callers[entry.sha256] = Caller(name=entry.name, kind=kind, scope=scope)

    def __len__(self) -> int:
        return len(self._callers)

    def authenticate(self, key: str | None) -> Caller | None:
        if not key:
            return None
        return self._callers.get(hash_key(key))

    def by_hash(self, sha256: str) -> Caller | None:
        """The caller of a key known by its SHA-256 (a workspace session's): None once the
        key is no longer configured."""
        return self._callers.get(sha256)


def configured_keys(settings: ApiSettings) -> list[ApiKeyEntry]:
    """`api.keys` plus the entries of `api.keys_file`, if one is set."""
    entries = list(settings.keys)
    if settings.keys_file is not None:
        entries += read_keys_file(settings.keys_file)
    return entries


def read_keys_file(path: Path) -> list[ApiKeyEntry]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigurationError(f"API keys file {path}: {error.strerror or error}") from None
    try:
        data: Any = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigurationError(f"API keys file {path}: {error}") from None
    raw = data.get("keys", []) if isinstance(data, dict) else data
    if not isinstance(raw, list):
        raise ConfigurationError(f"API keys file {path}: expected a list of [[keys]]")
    try:
        return [ApiKeyEntry.model_validate(item) for item in raw]
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise ConfigurationError(f"API keys file {path}: {problems}") from None


# ---------------------------------------------------------------- route rules


class Rule(StrEnum):
    """What a route lets through. Department and partner scopes are checked where the
    route knows the department or partner concerned."""

    INTAKE = "intake"
    ACT = "act"
    PROGRESS = "progress"
    CUSTOMER_REPLY = "customer_reply"
    PARTNER_CALLBACK = "partner_callback"
    READ_TICKET = "read_ticket"
    READ_EVENTS = "read_events"
    LIST = "list"
    METRICS = "metrics"
    REVIEW = "review"
    KNOWLEDGE_READ = "knowledge_read"
    KNOWLEDGE_EDIT = "knowledge_edit"
    ERASE = "erase"


ALLOWED: dict[Rule, frozenset[RoleKind]] = {
    Rule.INTAKE: frozenset({RoleKind.BACKEND, RoleKind.AGENT, RoleKind.OPERATOR}),
    Rule.ACT: frozenset({RoleKind.AGENT, RoleKind.OPERATOR}),
    Rule.PROGRESS: frozenset({RoleKind.AGENT, RoleKind.OPERATOR, RoleKind.DEPARTMENT}),
    Rule.CUSTOMER_REPLY: frozenset({RoleKind.BACKEND, RoleKind.AGENT}),
    Rule.PARTNER_CALLBACK: frozenset({RoleKind.PARTNER}),
    Rule.READ_TICKET: frozenset(
        {RoleKind.BACKEND, RoleKind.AGENT, RoleKind.OPERATOR, RoleKind.DEPARTMENT}
    ),
    Rule.READ_EVENTS: frozenset({RoleKind.AGENT, RoleKind.OPERATOR, RoleKind.DEPARTMENT}),
    Rule.LIST: frozenset({RoleKind.AGENT, RoleKind.OPERATOR, RoleKind.DEPARTMENT}),
    Rule.METRICS: frozenset({RoleKind.MANAGER, RoleKind.OPERATOR}),
    # The weekly review's leads.
    Rule.REVIEW: frozenset({RoleKind.MANAGER, RoleKind.OPERATOR}),
    Rule.KNOWLEDGE_READ: frozenset(
        {RoleKind.AGENT, RoleKind.OPERATOR, RoleKind.MANAGER, RoleKind.KNOWLEDGE}
    ),
    Rule.KNOWLEDGE_EDIT: frozenset({RoleKind.KNOWLEDGE}),
    # A customer's right to erasure is carried out by the desk's operators.
    Rule.ERASE: frozenset({RoleKind.OPERATOR}),
}


def allows(rule: Rule, caller: Caller) -> bool:
    return caller.kind in ALLOWED[rule]
