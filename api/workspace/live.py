"""Changes, live: PostgreSQL tells the API of every change of a ticket (the event store
after each append, and the relay after each delivery: `NOTIFY ticketflow_tickets`) and
of who has one open (`NOTIFY ticketflow_presence`); the hub fans them out to every open
page's stream.

One listening connection per API process, whatever the number of pages; several API
processes each listen for themselves. Nothing here asks Temporal anything: a page that
hears of a change reads the read model again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import structlog

from activities.database import Pool
from activities.event_store import TICKETS_CHANNEL

log = structlog.get_logger(__name__)

PRESENCE_CHANNEL = "ticketflow_presence"
# A page that falls this far behind is told to read everything again instead.
BACKLOG = 1000


class Change(StrEnum):
    TICKET = "ticket"
    PRESENCE = "presence"
    # Changes may have been missed (a reconnect, a page that fell behind): read again.
    RESYNC = "resync"
    CLOSING = "closing"


@dataclass(eq=False)
class Subscription:
    queue: asyncio.Queue[tuple[Change, str]] = field(default_factory=lambda: asyncio.Queue(BACKLOG))

    def put(self, change: Change, ticket_id: str) -> None:
        try:
            self.queue.put_nowait((change, ticket_id))
        except asyncio.QueueFull:
            # Behind by BACKLOG changes: drop them all, and read everything again.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait((Change.RESYNC, ""))


class LiveHub:
    """Listens on PostgreSQL while any page is open; started by the first subscriber."""

    def __init__(self, pool: Pool, check_every: float = 5.0) -> None:
        self._pool = pool
        self._check_every = check_every
        self._subscribers: set[Subscription] = set()
        self._listening: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._closed = False
        # Changes heard so far (tickets, and every time some may have been missed): what
        # a read made before the last one may no longer show (shared_reads.py).
        self.epoch = 0

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        """Changes from now on; waits until the hub listens, so none is missed."""
        if self._closed:
            raise RuntimeError("the live hub is closed")
        subscription = Subscription()
        self._subscribers.add(subscription)
        self.start()
        try:
            async with asyncio.timeout(10):
                await self._ready.wait()
            yield subscription
        finally:
            self._subscribers.discard(subscription)

    def start(self) -> None:
        """Listen from now on (the first page's stream, or the first shared read, starts it)."""
        if self._listening is None and not self._closed:
            self._listening = asyncio.create_task(self._listen(), name="live-hub")

    @property
    def listening(self) -> bool:
        """Changes are heard now (a read kept until the next one is still current)."""
        return self._ready.is_set() and self._listening is not None and not self._listening.done()

    async def notify_presence(self, ticket_id: str) -> None:
        await self._pool.execute("SELECT pg_notify($1, $2)", PRESENCE_CHANNEL, ticket_id)

    async def close(self) -> None:
        """Ends every open stream (a stopping API drains at once) and stops listening."""
        self._closed = True
        for subscription in list(self._subscribers):
            subscription.put(Change.CLOSING, "")
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening

    def _publish(self, change: Change, ticket_id: str) -> None:
        if change is not Change.PRESENCE:
            self.epoch += 1
        for subscription in list(self._subscribers):
            subscription.put(change, ticket_id)

    def _on_notify(self, _conn: Any, _pid: int, channel: str, payload: object) -> None:
        change = Change.PRESENCE if channel == PRESENCE_CHANNEL else Change.TICKET
        self._publish(change, str(payload))

    async def _listen(self) -> None:
        """Holds one connection with both LISTENs; on losing it, listens again and tells
        every page to read again (what changed meanwhile was not heard)."""
        first = True
        while True:
            try:
                async with self._pool.acquire() as conn:
                    await conn.add_listener(TICKETS_CHANNEL, self._on_notify)
                    await conn.add_listener(PRESENCE_CHANNEL, self._on_notify)
                    try:
                        self._ready.set()
                        if not first:
                            self._publish(Change.RESYNC, "")
                        first = False
                        while True:
                            await asyncio.sleep(self._check_every)
                            await conn.execute("SELECT 1")
                    finally:
                        # Back to the pool without listeners (asyncpg warns otherwise); a
                        # lost connection has none left to remove.
                        with contextlib.suppress(Exception):
                            await conn.remove_listener(TICKETS_CHANNEL, self._on_notify)
                            await conn.remove_listener(PRESENCE_CHANNEL, self._on_notify)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a lost connection, a restarted PostgreSQL
                self._ready.clear()
                self.epoch += 1
                log.warning("live changes: listening again", error=type(error).__name__)
                await asyncio.sleep(1.0)
