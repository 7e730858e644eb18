"""Relays sharing the outbox (issue 25): a pass writes its outcomes in one statement, and
two relays over one backlog send each row once, each ticket's rows to one destination in
the order the ticket decided them.

Real PostgreSQL (a schema of each test's own, so a relay sees only the test's rows) and
the real dev receiver over HTTP, as in test_delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from activities.database import Pool
from activities.delivery import DeliveryConfig, DueRow, OutboxRelay, Outcome
from activities.messages import MessageTemplates
from activities.outbox import Outbox
from tests.activities.test_delivery import (
    POLICY,
    SECRET,
    CountingRelay,
    held,
    webhook,
)
from tests.activities.test_outbox import handoff as outbox_handoff
from tests.activities.test_outbox import message as outbox_message
from tests.conftest import schema_of_its_own
from tests.waiting import eventually
from workers.receiver import Inbox
from workflows.contracts import (
    CustomerMessage,
    Handoff,
    HandoffKind,
    RelayRound,
)
from workflows.policy import department_address

TECH = department_address(POLICY, "tech")
SECRET_STR = SecretStr(SECRET)

# Counts the UPDATE statements on `outbox` (not the rows they touch): what a pass costs
# the database in round trips.
_COUNT_UPDATES = """
    CREATE TABLE outbox_updates (n bigint NOT NULL);
    CREATE FUNCTION outbox_update_counted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO outbox_updates VALUES (1);
        RETURN NULL;
    END $$;
    CREATE TRIGGER outbox_update_counted AFTER UPDATE ON outbox
        FOR EACH STATEMENT EXECUTE FUNCTION outbox_update_counted();
"""


def message(ticket_id: str, number: int) -> CustomerMessage:
    """The ticket's message `number` to the customer (app chat)."""
    first = outbox_message(ticket_id)
    return first.model_copy(update={"dedupe_key": f"{first.dedupe_key}:{number}"})


def work_order(ticket_id: str, number: int) -> Handoff:
    """The ticket's work order `number` to tech."""
    first = outbox_handoff(ticket_id, HandoffKind.WORK_ORDER, ["tech"])
    return first.model_copy(update={"dedupe_key": f"{first.dedupe_key}:{number}"})


@contextlib.asynccontextmanager
async def routed(
    database_url: str, name: str, customers: Inbox, tech: Inbox, **settings: Any
) -> AsyncIterator[tuple[Pool, OutboxRelay]]:
    """A relay over a schema of its own, sending tech's rows to `tech`'s receiver and
    the rest to `customers`'."""
    async with (
        webhook(customers) as url,
        webhook(tech) as tech_url,
        schema_of_its_own(database_url, name) as pool,
    ):
        config = DeliveryConfig(
            webhook_url=url, routes={TECH: tech_url}, secret=SECRET_STR, **settings
        )
        relay = OutboxRelay(pool, POLICY, MessageTemplates.load(), config, None)
        try:
            yield pool, relay
        finally:
            await relay.close()


def new_ticket() -> str:
    return f"ticket-{uuid.uuid4().hex[:24]}"


async def test_a_pass_writes_its_delivered_retried_and_failed_rows_in_one_statement(
    database_url: str,
) -> None:
    """Before: one UPDATE per row (31 statements for this pass of 30). Now the claim and
    one statement for every outcome, each written as the per-row statements wrote it."""
    inbox, down = Inbox(secret=SECRET), Inbox(secret=SECRET, down=True)
    # Every send of the pass ends within the window: one statement.
    window = timedelta(minutes=1)
    async with routed(
        database_url, "relay_settle", inbox, down, batch=30, settle_window=window
    ) as (pool, relay):
        outbox = Outbox(pool, POLICY)
        delivered = [new_ticket() for _ in range(28)]
        for ticket_id in delivered:
            await outbox.enqueue(ticket_id, outbox.rows([message(ticket_id, 1)], []))
        retried = new_ticket()
        await outbox.enqueue(retried, outbox.rows([], [work_order(retried, 1)]))
        failed = new_ticket()
        nowhere = work_order(failed, 1).model_copy(update={"recipients": ["nowhere"]})
        await outbox.enqueue(failed, outbox.rows([], [nowhere]))
        await pool.execute(_COUNT_UPDATES)
        passed = await relay.deliver_once()

        assert passed == RelayRound(delivered=28, retried=1, failed=1)
        assert await pool.fetchval("SELECT count(*) FROM outbox_updates") == 2  # claim, settle
        rows = {r["ticket_id"]: r for r in await pool.fetch("SELECT * FROM outbox")}
        for ticket_id in delivered:
            row = rows[ticket_id]
            assert row["dispatched_at"] is not None and row["failed_at"] is None
            assert row["rendered"] == inbox.received[row["dedupe_key"]].text
            assert row["locale"] == inbox.received[row["dedupe_key"]].locale
            assert row["receipt"]["status"] == 202
            assert row["last_error"] is None
        again = rows[retried]
        assert again["dispatched_at"] is None and again["failed_at"] is None
        assert again["last_error"].startswith("HTTP 503")
        assert again["next_attempt_at"] > await pool.fetchval("SELECT now()")
        assert again["rendered"] is None and again["receipt"] is None
        given_up = rows[failed]
        assert given_up["failed_at"] is not None and given_up["dispatched_at"] is None
        assert given_up["last_error"] == "no destination is configured for unroutable:nowhere"
        assert given_up["rendered"]  # the words it would have said


@pytest.mark.parametrize("answered", [True, False], ids=["answered", "cut short"])
async def test_a_row_is_written_delivered_only_once_its_send_has_ended(
    database_url: str, answered: bool
) -> None:
    """A pass's fast rows are written as their sends end; its slow row stays leased and
    undelivered until the destination has answered it, then is written delivered. A pass
    cut short meanwhile (the worker stops) hands the slow row back for the next relay."""
    fast, slow = Inbox(secret=SECRET), Inbox(secret=SECRET, hold=asyncio.Event())
    window = timedelta(milliseconds=10)
    async with routed(database_url, "relay_window", fast, slow, settle_window=window) as (
        pool,
        relay,
    ):
        outbox = Outbox(pool, POLICY)
        quick = [new_ticket() for _ in range(5)]
        for ticket_id in quick:
            await outbox.enqueue(ticket_id, outbox.rows([message(ticket_id, 1)], []))
        waiting = new_ticket()
        await outbox.enqueue(waiting, outbox.rows([], [work_order(waiting, 1)]))

        async def dispatched() -> set[str]:
            records = await pool.fetch(
                "SELECT ticket_id FROM outbox WHERE dispatched_at IS NOT NULL"
            )
            return {r["ticket_id"] for r in records}

        passing = asyncio.create_task(relay.deliver_once())
        try:
            assert await eventually(dispatched, lambda d: d == set(quick)) == set(quick)
            await eventually(held(lambda: slow.requests), lambda n: n == 1)
            assert waiting not in await dispatched() and not passing.done()
            if answered:
                slow.hold.set()  # type: ignore[union-attr]
                assert await passing == RelayRound(delivered=6)
                assert await dispatched() == {*quick, waiting}
            else:
                passing.cancel()
                await asyncio.wait({passing})
                assert await dispatched() == set(quick)
                handed_back = await pool.fetchval(
                    "SELECT next_attempt_at <= now() FROM outbox WHERE ticket_id = $1",
                    waiting,
                )
                assert handed_back
        finally:
            slow.hold.set()  # type: ignore[union-attr]
            await asyncio.wait({passing})


class WatchedRelay(OutboxRelay):
    """The real relay, counting the webhook requests it has open at once."""

    open_now = 0
    open_most = 0

    async def _post(self, url: str, row: DueRow, locale: str | None, text: str) -> Outcome:
        self.open_now += 1
        self.open_most = max(self.open_most, self.open_now)
        try:
            return await super()._post(url, row, locale, text)
        finally:
            self.open_now -= 1


async def test_a_route_gets_at_most_its_requests_at_once(database_url: str) -> None:
    """A pass of 30 rows to one webhook: 10 requests open at a time (before: all 30 at
    once, which cost httpx's pool more CPU than the sends did), every row delivered."""
    inbox = Inbox(secret=SECRET)
    async with webhook(inbox) as url, schema_of_its_own(database_url, "relay_lanes") as pool:
        outbox = Outbox(pool, POLICY)
        for _ in range(30):
            ticket_id = new_ticket()
            await outbox.enqueue(ticket_id, outbox.rows([message(ticket_id, 1)], []))
        config = DeliveryConfig(webhook_url=url, secret=SECRET_STR, batch=30, requests_per_route=10)
        relay = WatchedRelay(pool, POLICY, MessageTemplates.load(), config, None)
        try:
            assert await relay.deliver_once() == RelayRound(delivered=30)
        finally:
            await relay.close()
        assert relay.open_most == 10
        assert len(inbox.received) == 30


@pytest.mark.parametrize("count", [2, 1], ids=["two relays", "one relay"])
async def test_two_relays_share_a_backlog_each_row_once_in_each_destinations_order(
    database_url: str, count: int
) -> None:
    """Two relays over one backlog: every row reaches the receiver once (one request per
    Idempotency-Key), is written delivered, and a ticket's rows to one destination arrive
    in the order the ticket decided them, whichever relay sent which. So too with one
    relay alone, its passes overlapping (`passes`)."""
    inbox = Inbox(secret=SECRET)
    async with webhook(inbox) as url, schema_of_its_own(database_url, "relay_pair") as pool:
        outbox = Outbox(pool, POLICY)
        tickets = [new_ticket() for _ in range(20)]
        for ticket_id in tickets:
            # Two destinations, interleaved: messages to app_chat, work orders to tech.
            first = outbox.rows([message(ticket_id, 1)], [work_order(ticket_id, 1)])
            later = outbox.rows(
                [message(ticket_id, 2), message(ticket_id, 3)], [work_order(ticket_id, 2)]
            )
            await outbox.enqueue(ticket_id, first)
            await outbox.enqueue(ticket_id, later)
        rows = await pool.fetch(
            "SELECT id, dedupe_key, ticket_id, channel_or_recipient FROM outbox"
        )
        assert len(rows) == 100
        config = DeliveryConfig(
            webhook_url=url,
            secret=SECRET_STR,
            # Small passes, so the two relays (or one relay's passes) take turns at
            # every ticket's rows.
            batch=7,
            passes=3,
            poll_interval=timedelta(milliseconds=20),
        )
        relays = [
            CountingRelay(pool, POLICY, MessageTemplates.load(), config, None) for _ in range(count)
        ]
        ending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        rounds = []
        for relay in relays:
            relay.passes = []
            rounds.append(
                asyncio.create_task(relay.deliver_for(timedelta(minutes=5), stopping=ending))
            )
        try:
            # Until every pass that sent a row has written its outcome and returned: the
            # receiver has a row a moment before its relay settles it, and a stop cuts the
            # pass in flight (its rows handed back, to be sent again).
            settled = held(lambda: sum(p.delivered for relay in relays for p in relay.passes))
            await eventually(settled, lambda n: n == 100, within=60)
        finally:
            ending.set_result(None)
            done = await asyncio.gather(*rounds)
            for relay in relays:
                await relay.close()

        assert inbox.requests == 100
        assert all(r.copies == 1 for r in inbox.received.values())
        assert sum(d.delivered for d in done) == 100
        assert all(d.delivered > 0 for d in done), done  # both relays took rows
        assert all(d.retried == d.failed == 0 for d in done)
        undelivered = await pool.fetchval(
            "SELECT count(*) FROM outbox WHERE dispatched_at IS NULL OR attempts <> 1"
        )
        assert undelivered == 0
        decided: dict[tuple[str, str], list[str]] = defaultdict(list)
        for row in sorted(rows, key=lambda r: r["id"]):
            decided[row["ticket_id"], row["channel_or_recipient"]].append(row["dedupe_key"])
        assert len(decided) == 40
        for keys in decided.values():
            arrived = sorted(keys, key=lambda key: inbox.received[key].received_at)
            assert arrived == keys


async def test_a_round_cancelled_while_idle_leaves_no_task_behind(database_url: str) -> None:
    """The worker cancels a relay's round as it idles (shutdown, an activity cancelled):
    nothing it started is left pending. Before, its wait for a notification was, and
    asyncio logged "Task was destroyed but it is pending!" for each such round."""
    inbox = Inbox(secret=SECRET)
    async with webhook(inbox) as url, schema_of_its_own(database_url, "relay_idle") as pool:
        config = DeliveryConfig(
            webhook_url=url, secret=SECRET_STR, poll_interval=timedelta(hours=1)
        )
        relay = CountingRelay(pool, POLICY, MessageTemplates.load(), config, None)
        relay.passes = []
        before = asyncio.all_tasks()
        rounds = asyncio.create_task(relay.deliver_for(timedelta(minutes=5)))
        try:
            # The relay found nothing and idles: the next pass is an hour away.
            await eventually(held(lambda: list(relay.passes)), lambda passes: len(passes) >= 1)
        finally:
            rounds.cancel()
            await asyncio.wait({rounds})
            await relay.close()
        left = [task for task in asyncio.all_tasks() - before if not task.done()]
        assert left == []
