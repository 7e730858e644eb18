"""Signed partner callbacks: HMAC-SHA256 over `<timestamp>.<body>`.

A partner sends

    X-Ticketflow-Timestamp: 1767225600            (Unix seconds, when it signed)
    X-Ticketflow-Signature: sha256=<hex>          (HMAC-SHA256(secret, f"{timestamp}.{body}"))

A signature older (or further ahead) than the tolerance is refused, and so is one seen
before: every accepted signature is remembered in PostgreSQL (table `api_seen_signatures`,
created by the API at start) for twice the tolerance, after which its timestamp alone
refuses it. The table lives in the database every API process shares, so a replay sent
to another API instance is caught too.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from activities.database import Pool, PoolConnection
from api.errors import ApiError

TIMESTAMP_HEADER = "X-Ticketflow-Timestamp"
SIGNATURE_HEADER = "X-Ticketflow-Signature"

_SIGNATURE = re.compile(r"^(?:sha256=)?([0-9a-fA-F]{64})$")
# Two-key advisory lock, so API processes starting together take turns creating the table.
_SCHEMA_LOCK = (0x7466, 0x617069)  # "tf", "api"

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_seen_signatures (
    signature text        PRIMARY KEY,
    partner   text        NOT NULL,
    seen_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS api_seen_signatures_seen_at ON api_seen_signatures (seen_at);
"""


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The signature header's value for `body` signed at `timestamp` (partners' side too)."""
    message = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    return {TIMESTAMP_HEADER: str(stamp), SIGNATURE_HEADER: sign(secret, stamp, body)}


def _refused(detail: str) -> ApiError:
    return ApiError(401, "bad_signature", detail)


def verify(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    tolerance: timedelta,
    now: float | None = None,
) -> str:
    """The signature's hex digest if it is valid and fresh; a 401 ApiError otherwise."""
    if not timestamp or not signature:
        raise _refused(f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise _refused(f"{TIMESTAMP_HEADER} must be Unix seconds")
    match = _SIGNATURE.match(signature.strip())
    if match is None:
        raise _refused(f"{SIGNATURE_HEADER} must be sha256=<64 hex digits>")
    age = (time.time() if now is None else now) - int(timestamp)
    if abs(age) > tolerance.total_seconds():
        raise _refused(
            f"timestamp is {abs(age):.0f} s {'old' if age > 0 else 'ahead'}; "
            f"at most {tolerance.total_seconds():.0f} s is accepted"
        )
    expected = sign(secret, timestamp, body).removeprefix("sha256=")
    given = match.group(1).lower()
    if not hmac.compare_digest(expected, given):
        raise _refused("signature does not match the body and timestamp")
    return given


class SeenSignatures:
    """Accepted signatures, remembered in PostgreSQL to refuse replays."""

    def __init__(self, pool: Pool, tolerance: timedelta) -> None:
        self._pool = pool
        self._keep = tolerance * 2

    async def create_schema(self) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *_SCHEMA_LOCK)
            await conn.execute(SCHEMA)

    @asynccontextmanager
    async def claim(self, partner: str, signature: str) -> AsyncIterator[PoolConnection]:
        """Hold the signature while the callback is delivered: remembered if the block
        succeeds, forgotten if it fails (the partner may send the same request again).
        A concurrent copy waits for the first one's outcome."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM api_seen_signatures WHERE seen_at < now() - $1::interval",
                self._keep,
            )
            claimed = await conn.fetchval(
                "INSERT INTO api_seen_signatures (signature, partner) VALUES ($1, $2) "
                "ON CONFLICT (signature) DO NOTHING RETURNING true",
                signature,
                partner,
            )
            if not claimed:
                raise ApiError(409, "replayed", "this signed callback was already accepted")
            yield conn
