"""The one bounded wait of the suite. What a test watches often trails what it did (the
event store behind a ticket, a relay's pass, the server's task-queue statistics), so a
test polls until it sees the state it expects, up to a bound, and never sleeps for a
fixed time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

POLL = 0.05  # seconds between looks: short beside every bound, light on the servers


async def eventually(
    probe: Callable[[], Awaitable[T]], good: Callable[[T], bool], within: float = 20.0
) -> T:
    """Poll `probe` until `good` says yes or `within` seconds have passed, and return what
    it saw last: the caller asserts on it, so a failure shows the value, not a timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await probe()
        if good(value) or loop.time() > deadline:
            return value
        await asyncio.sleep(POLL)
