"""Signed-in browsers: a random token in an HttpOnly, SameSite=Strict cookie, and a row
holding its SHA-256, the SHA-256 of the key it was opened with, and the session's CSRF
token. The key itself is never stored and never leaves the sign-in form.

The person is the key's: every action from the workspace is recorded as the key's name,
and no form field can name anyone else. A key taken out of configuration ends its
sessions at the next request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from activities.database import Pool
from api.access import Caller, KeyRing, RoleKind, hash_key

COOKIE = "tf_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
# Who works in the workspace: agents, supervisors (operator keys) and departments.
WORKSPACE_ROLES = frozenset({RoleKind.AGENT, RoleKind.OPERATOR, RoleKind.DEPARTMENT})


@dataclass(frozen=True)
class Preferences:
    """The person's own choice of language and time zone, if they made one."""

    locale: str
    time_zone: str


@dataclass(frozen=True)
class Session:
    caller: Caller
    csrf: str
    token_sha256: str
    preferences: Preferences | None = None

    def csrf_matches(self, sent: str | None) -> bool:
        return sent is not None and secrets.compare_digest(sent.encode(), self.csrf.encode())


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    def __init__(self, pool: Pool, keys: KeyRing, ttl: timedelta) -> None:
        self._pool = pool
        self._keys = keys
        self._ttl = ttl

    async def open(self, key: str) -> tuple[str, Session] | None:
        """A new session for a workspace key: its cookie token and the session. None for
        a key that is unknown or not one of the workspace's roles."""
        caller = self._keys.authenticate(key)
        if caller is None or caller.kind not in WORKSPACE_ROLES:
            return None
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        # Sign-ins are rare: each sweeps the sessions that ran out.
        await self._pool.execute("DELETE FROM workspace_sessions WHERE expires_at < now()")
        await self._pool.execute(
            "INSERT INTO workspace_sessions (token_sha256, key_sha256, staff_id, csrf, expires_at)"
            " VALUES ($1, $2, $3, $4, now() + $5::interval)",
            _digest(token),
            hash_key(key),
            caller.name,
            csrf,
            self._ttl,
        )
        return token, Session(caller=caller, csrf=csrf, token_sha256=_digest(token))

    async def find(self, token: str | None) -> Session | None:
        if not token or len(token) > 128:
            return None
        # The session and the person's preferences in one round trip: every page and
        # every live re-read starts here.
        row = await self._pool.fetchrow(
            "SELECT s.key_sha256, s.staff_id, s.csrf, p.locale, p.time_zone"
            " FROM workspace_sessions s"
            " LEFT JOIN workspace_preferences p ON p.staff_id = s.staff_id"
            " WHERE s.token_sha256 = $1 AND s.expires_at > now()",
            _digest(token),
        )
        if row is None:
            return None
        caller = self._keys.by_hash(row["key_sha256"])
        if caller is None or caller.kind not in WORKSPACE_ROLES or caller.name != row["staff_id"]:
            return None
        chosen = None if row["locale"] is None else Preferences(row["locale"], row["time_zone"])
        return Session(caller, row["csrf"], _digest(token), chosen)

    async def close(self, session: Session) -> None:
        await self._pool.execute(
            "DELETE FROM workspace_sessions WHERE token_sha256 = $1", session.token_sha256
        )
