"""Signed partner callbacks, in the scheme of `activities.signing` (the one ticketflow's
own deliveries are signed with): HMAC-SHA256 over `<timestamp>.<body>`.

A signature older (or further ahead) than the tolerance is refused, and so is one seen
before: every accepted signature is remembered in PostgreSQL (table `api_seen_signatures`,
activities/migrations/0009_seen_signatures.sql) for twice the tolerance, after which its
timestamp alone refuses it. The table lives in the database every API process shares, so
a replay sent to another API instance is caught too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from activities.database import Pool, PoolConnection
from activities.signing import SignatureError, check_signature
from api.errors import ApiError


def verify(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    tolerance: timedelta,
    now: float | None = None,
) -> str:
    """The signature's hex digest if it is valid and fresh; a 401 ApiError otherwise."""
    try:
        return check_signature(secret, timestamp, signature, body, tolerance, now)
    except SignatureError as error:
        raise ApiError(401, "bad_signature", str(error)) from None


class SeenSignatures:
    """Accepted signatures, remembered in PostgreSQL to refuse replays."""

    def __init__(self, pool: Pool, tolerance: timedelta) -> None:
        self._pool = pool
        self._keep = tolerance * 2

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
