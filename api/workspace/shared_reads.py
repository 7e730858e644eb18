"""Reads of the read model shared by the pages one change redraws.

A change reaches every open queue page at once, and each reads its counts and rows again
(docs/workspace.md, "Live"): fifty pages are fifty identical reads of the views they
share. Here a read is kept while nothing changed since it began, as the live hub counts
changes (`LiveHub.epoch`), and for at most `fresh_for` (the views "overdue" and
"breaching soon" move with the clock); pages that ask while it runs wait for it instead
of reading again. Without a listening hub nothing is kept: no change would be heard.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from activities.database import Pool
from api.read_model import Sort, TicketFilter, count_views, list_tickets
from api.schemas import TicketPage

T = TypeVar("T")


class Heard(Protocol):
    """What of the live hub (`LiveHub`) tells whether a kept read is still current."""

    @property
    def epoch(self) -> int: ...

    @property
    def listening(self) -> bool: ...

    def start(self) -> None: ...


# Reads kept at most (each is a page of rows or a set of counts).
MOST_KEPT = 2000


@dataclass(frozen=True)
class _Kept:
    epoch: int
    at: float
    read: asyncio.Future[Any]


class SharedReads:
    def __init__(self, pool: Pool, live: Heard, fresh_for: timedelta) -> None:
        self._pool = pool
        self._live = live
        self._fresh_for = fresh_for.total_seconds()
        self._kept: dict[Hashable, _Kept] = {}

    async def counts(self, common: TicketFilter, views: dict[str, TicketFilter]) -> dict[str, int]:
        key = ("counts", repr(common), tuple((name, repr(f)) for name, f in views.items()))
        return await self._shared(key, lambda: count_views(self._pool, common, views))

    async def page(self, chosen: TicketFilter, limit: int, cursor: str | None) -> TicketPage:
        key = ("page", repr(chosen), limit, cursor)
        return await self._shared(
            key, lambda: list_tickets(self._pool, chosen, limit, cursor, Sort.ATTENTION)
        )

    async def _shared(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        if not self._live.listening:
            self._live.start()  # the reads after this one may be shared
            return await read()
        epoch = self._live.epoch
        now = time.monotonic()
        kept = self._kept.get(key)
        if kept is None or kept.epoch != epoch or now - kept.at > self._fresh_for:
            if len(self._kept) >= MOST_KEPT:
                self._kept = {k: v for k, v in self._kept.items() if v.epoch == epoch}
                if len(self._kept) >= MOST_KEPT:
                    self._kept.clear()
            kept = _Kept(epoch, now, asyncio.ensure_future(read()))
            self._kept[key] = kept
            kept.read.add_done_callback(lambda done: self._forget_failed(key, done))
        # A page that goes away (its browser closed) leaves the read to the others.
        found: T = await asyncio.shield(kept.read)
        return found

    def _forget_failed(self, key: Hashable, done: asyncio.Future[Any]) -> None:
        if done.cancelled() or done.exception() is not None:
            kept = self._kept.get(key)
            if kept is not None and kept.read is done:
                del self._kept[key]
