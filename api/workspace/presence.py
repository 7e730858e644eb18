"""Who has a ticket open, and who is typing a reply: a row per open page in
`workspace_presence`, kept fresh by the page's live stream and told to the other pages
through the hub. Rows of a page that vanished expire after `presence_ttl`."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel

from activities.database import Pool


class Viewer(BaseModel):
    staff_id: str
    typing_until: datetime | None = None


class Presence:
    def __init__(self, pool: Pool, ttl: timedelta, typing: timedelta) -> None:
        self._pool = pool
        self._ttl = ttl
        self._typing = typing

    async def join(self, ticket_id: str, connection: str, staff_id: str) -> None:
        await self._pool.execute(
            "INSERT INTO workspace_presence (ticket_id, connection, staff_id) VALUES ($1, $2, $3)"
            " ON CONFLICT (ticket_id, connection) DO UPDATE SET seen_at = now()",
            ticket_id,
            connection,
            staff_id,
        )

    async def touch(self, ticket_id: str, connection: str) -> None:
        await self._pool.execute(
            "UPDATE workspace_presence SET seen_at = now()"
            " WHERE ticket_id = $1 AND connection = $2",
            ticket_id,
            connection,
        )

    async def typing(self, ticket_id: str, staff_id: str) -> None:
        await self._pool.execute(
            "UPDATE workspace_presence SET typing_until = now() + $3::interval"
            " WHERE ticket_id = $1 AND staff_id = $2",
            ticket_id,
            staff_id,
            self._typing,
        )

    async def leave(self, ticket_id: str, connection: str) -> None:
        await self._pool.execute(
            "DELETE FROM workspace_presence WHERE ticket_id = $1 AND connection = $2"
            " OR seen_at < now() - $3::interval",
            ticket_id,
            connection,
            self._ttl,
        )

    async def viewers(self, ticket_id: str) -> list[Viewer]:
        rows = await self._pool.fetch(
            "SELECT staff_id, max(typing_until) FILTER (WHERE typing_until > now()) AS typing"
            " FROM workspace_presence WHERE ticket_id = $1 AND seen_at > now() - $2::interval"
            " GROUP BY staff_id ORDER BY staff_id",
            ticket_id,
            self._ttl,
        )
        return [Viewer(staff_id=row["staff_id"], typing_until=row["typing"]) for row in rows]
