"""One relay's passes (issue 25): the next pass claims while the last still sends, as many
at once as `delivery.passes` allows, and a claim costs the same whatever PostgreSQL's
statistics of the outbox say.

Real PostgreSQL (a schema of each test's own) and the real dev receiver over HTTP, as in
test_delivery.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import SecretStr

from activities.delivery import _CLAIM, DeliveryConfig
from activities.messages import MessageTemplates
from activities.outbox import Outbox
from tests.activities.test_delivery import POLICY, SECRET, CountingRelay, eventually, held, webhook
from tests.activities.test_relay_sharing import TECH, message, new_ticket
from tests.conftest import schema_of_its_own
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


async def test_a_claim_probes_each_rows_predecessors_whatever_the_statistics_say(
    database_url: str,
) -> None:
    """PostgreSQL's statistics of the outbox taken while every row was delivered (a
    long-running outbox is mostly delivered rows), then a backlog queued faster than
    autovacuum analyses the table: a claim of 50 still looks up each candidate's earlier
    rows through the index. Before, the planner, believing no row undelivered, read the
    whole backlog for each candidate: 130 ms a claim over bench part 6's 4,000 rows."""
    async with schema_of_its_own(database_url, "relay_claim_plan") as pool:
        await pool.execute("ALTER TABLE outbox SET (autovacuum_enabled = false)")
        await pool.execute(_BACKLOG.replace("'ticket-'", "'settled-'"), 250, TECH, True)
        await pool.execute("ANALYZE outbox")
        await pool.execute(_BACKLOG, 1000, TECH, False)
        async with pool.acquire() as conn:
            claiming = conn.transaction()
            await claiming.start()
            try:
                # The pool decodes json: the plan comes back as a list.
                explained = await conn.fetchval(
                    f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {_CLAIM}", 50, timedelta(seconds=10)
                )
            finally:
                await claiming.rollback()
    top = explained[0]["Plan"]
    assert top["Actual Rows"] == 50
    # Now about 1,200 rows read to claim 50; before, 200,000 (each of ~100 candidates
    # read the whole backlog).
    assert _rows_read(top) < 50 * 50, _rows_read(top)


def _rows_read(node: dict[str, Any]) -> float:
    """Rows every node of an EXPLAIN ANALYZE plan returned, over all its loops."""
    rows = float(node["Actual Rows"]) * float(node["Actual Loops"])
    return rows + sum(_rows_read(child) for child in node.get("Plans", []))
