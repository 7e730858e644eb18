"""Reads of the queue shared by the pages one change redraws (api/workspace/shared_reads.py),
and the live hub's count of changes they rely on, on real PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import pytest

from activities.database import Pool
from activities.event_store import tell_changed
from api.workspace.live import LiveHub
from api.workspace.shared_reads import SharedReads
from tests.waiting import eventually

pytestmark = pytest.mark.usefixtures("database_url")


@dataclass
class Heard:
    epoch: int = 0
    listening: bool = True
    started: int = 0

    def start(self) -> None:
        self.started += 1


async def test_pages_asking_at_once_share_one_read_until_a_change(pg_pool: Pool) -> None:
    heard = Heard()
    reads = SharedReads(pg_pool, heard, timedelta(seconds=60))
    calls = 0
    gate = asyncio.Event()

    async def read() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return calls

    waiting = [asyncio.ensure_future(reads._shared("k", read)) for _ in range(50)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiting) == [1] * 50
    assert await reads._shared("k", read) == 1  # nothing changed: still current

    heard.epoch += 1  # a ticket changed
    assert await reads._shared("k", read) == 2
    heard.listening = False  # no change would be heard: nothing is kept
    assert await reads._shared("k", read) == 3
    assert await reads._shared("k", read) == 4
    assert heard.started == 2  # and the hub is asked to listen


async def test_a_failed_read_is_not_kept(pg_pool: Pool) -> None:
    reads = SharedReads(pg_pool, Heard(), timedelta(seconds=60))
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("PostgreSQL went away")
        return "rows"

    with pytest.raises(ConnectionError):
        await reads._shared("k", flaky)
    assert await reads._shared("k", flaky) == "rows"


async def test_a_read_is_kept_no_longer_than_it_is_fresh(pg_pool: Pool) -> None:
    reads = SharedReads(pg_pool, Heard(), timedelta(0))
    served = iter(range(10))

    async def read() -> int:
        return next(served)

    assert [await reads._shared("k", read) for _ in range(3)] == [0, 1, 2]


async def test_the_hub_counts_every_change_it_hears(pg_pool: Pool) -> None:
    hub = LiveHub(pg_pool)
    try:
        assert not hub.listening
        async with hub.subscribe() as subscription:
            assert hub.listening
            before = hub.epoch
            await tell_changed(pg_pool, ["ticket-shared-reads-1"])
            heard = await eventually(lambda: _epoch(hub), lambda epoch: epoch > before)
            assert heard > before
            # (Other tickets of the database may change meanwhile: told too.)
            async with asyncio.timeout(5):
                while (await subscription.queue.get())[1] != "ticket-shared-reads-1":
                    pass
    finally:
        await hub.close()
    assert not hub.listening


async def _epoch(hub: LiveHub) -> int:
    return hub.epoch
