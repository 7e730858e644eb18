"""One relay's passes (issue 25): the next pass claims while the last still sends, as many
at once as `delivery.passes` allows, and a pass's statements read the rows they touch
whatever PostgreSQL's statistics of the outbox say.

Real PostgreSQL (a schema of each test's own) and the real dev receiver over HTTP, as in
test_delivery.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import SecretStr

from activities.database import PoolConnection
from activities.delivery import _CLAIM, _RENEW, _SETTLE, DeliveryConfig
from activities.messages import MessageTemplates
from activities.outbox import Outbox
from tests.activities.test_delivery import POLICY, SECRET, CountingRelay, held, webhook
from tests.activities.test_relay_sharing import TECH, message, new_ticket
from tests.conftest import schema_of_its_own
from tests.waiting import eventually
from workers.receiver import Inbox


async def test_the_next_pass_claims_while_the_last_one_still_sends(database_url: str) -> None:
    """A destination that holds every request: with two passes of one row allowed, two
    rows are on their way at once (before, a relay's next pass waited for its last one:
    one row at a time), and no third is claimed until a pass has ended."""
    inbox = Inbox(secret=SECRET, hold=asyncio.Event())
    async with webhook(inbox) as url, schema_of_its_own(database_url, "relay_passes") as pool:
        outbox = Outbox(pool, POLICY)
        tickets = [new_ticket() for _ in range(3)]
        for ticket_id in tickets:
            await outbox.enqueue(ticket_id, outbox.rows([message(ticket_id, 1)], []))
        config = DeliveryConfig(webhook_url=url, secret=SecretStr(SECRET), batch=1, passes=2)
        relay = CountingRelay(pool, POLICY, MessageTemplates.load(), config, None)
        relay.passes = []
        ending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        rounds = asyncio.create_task(relay.deliver_for(timedelta(minutes=5), stopping=ending))
        try:
            assert await eventually(held(lambda: inbox.requests), lambda n: n == 2) == 2
            leased = await pool.fetchval("SELECT count(*) FROM outbox WHERE attempts > 0")
            assert leased == 2 and relay.passes == []
            inbox.hold.set()  # type: ignore[union-attr]
            await eventually(held(lambda: len(inbox.received)), lambda n: n == 3)
        finally:
            inbox.hold.set()  # type: ignore[union-attr]
            ending.set_result(None)
            done = await rounds
            await relay.close()
        assert done.delivered == 3
        assert inbox.requests == 3 and all(r.copies == 1 for r in inbox.received.values())


# A backlog as a busy day leaves it: tickets of three messages to the customer's channel
# and a work order to tech, in the order a ticket decides them.
_BACKLOG = """
    INSERT INTO outbox (ticket_id, dedupe_key, kind, channel_or_recipient, payload,
        dispatched_at)
    SELECT 'ticket-' || t, 'ticket-' || t || ':' || n, 'customer_message:reply',
        CASE WHEN n = 3 THEN $2 ELSE 'app_chat' END, '{}'::jsonb,
        CASE WHEN $3 THEN now() END
    FROM generate_series(1, $1) AS t, generate_series(1, 4) AS n
    ORDER BY t, n
"""


async def test_a_pass_reads_the_rows_it_touches_whatever_the_statistics_say(
    database_url: str,
) -> None:
    """PostgreSQL's statistics of the outbox taken while every row was delivered (a
    long-running outbox is mostly delivered rows), then a backlog queued faster than
    autovacuum analyses the table: a claim of 50 still looks up each candidate's earlier
    rows through the ticket's index, and the renewal and the settle of those 50 find them
    by id. Before, the planner, believing no row undelivered, read the whole backlog for
    each candidate of a claim (130 ms a claim over bench part 6's 4,000 rows), and hashed
    the whole backlog for each renewal and settle."""
    async with schema_of_its_own(database_url, "relay_claim_plan") as pool:
        await pool.execute("ALTER TABLE outbox SET (autovacuum_enabled = false)")
        await pool.execute(_BACKLOG.replace("'ticket-'", "'settled-'"), 1000, TECH, True)
        await pool.execute("ANALYZE outbox")
        await pool.execute(_BACKLOG, 5000, TECH, False)
        lease = timedelta(seconds=10)
        async with pool.acquire() as conn:
            claiming = conn.transaction()
            await claiming.start()
            try:
                claim = await _explained(conn, _CLAIM, 50, lease)
                held = await conn.fetch("SELECT id, attempts FROM outbox WHERE attempts > 0")
                ids, attempts = [r["id"] for r in held], [r["attempts"] for r in held]
                renew = await _explained(conn, _RENEW, ids, attempts, lease)
                settle = await _explained(
                    conn, _SETTLE, ids, attempts, *([["delivered"] * 50] + [[None] * 50] * 5)
                )
            finally:
                await claiming.rollback()
    assert claim["Actual Rows"] == 50 and settle["Actual Rows"] == 0  # RETURNING nothing
    # Now about 700 rows read to claim 50, 150 to renew and to settle them; before,
    # 1,000,000 for the claim (each of ~100 candidates read the 20,000-row backlog) and
    # 40,000 for the renewal and for the settle.
    for statement in (claim, renew, settle):
        assert _rows_read(statement) < 50 * 50, _rows_read(statement)


async def _explained(conn: PoolConnection, sql: str, *args: object) -> dict[str, Any]:
    """The statement's plan as run (EXPLAIN ANALYZE runs it)."""
    # The pool decodes json: the plan comes back as a list.
    explained = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
    plan: dict[str, Any] = explained[0]["Plan"]
    return plan


def _rows_read(node: dict[str, Any]) -> float:
    """Rows every node of an EXPLAIN ANALYZE plan returned, over all its loops."""
    rows = float(node["Actual Rows"]) * float(node["Actual Loops"])
    return rows + sum(_rows_read(child) for child in node.get("Plans", []))
