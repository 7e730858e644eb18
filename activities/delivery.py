"""Delivery: every outbox row reaches its destination, or is reported as failed.

`OutboxRelay.deliver_due` is the activity `OutboxRelayWorkflow` keeps running. Each pass
leases the due rows (a row waits for the earlier rows of its ticket to the same
destination, so a customer reads messages in the order they were decided), renders
customer messages in the customer's language and hand-offs in the company's
(`activities.messages`), and hands each row to its destination's adapter:

- a signed webhook (the default): JSON, `Idempotency-Key: <row key>`, and the partner
  callbacks' HMAC-SHA256 scheme (`activities.signing`);
- SMTP, for e-mail.

A delivered row gets `dispatched_at`, the words as sent and the destination's receipt. A
failing one is tried again with the policy's backoff (`ServicePolicy.delivery`); past the
policy's budget, or refused outright (a 4xx, no route), it is reported to its owner (the
ticket, review or surge investigation whose id it carries), which records
`delivery_failed` and tells a supervisor (`workflows.delivery_failures`), and only then
marked failed.
Destinations fail alone: each row has its own schedule, and a pass delivers its rows
concurrently, each with its own timeout. A pass writes its outcomes together, one
statement for the rows whose sends end within `settle_window` of each other, never
before a row's send has ended.

Several relays (one per worker, or several in one) share the table: the claim leases
each row to one of them, and one destination's order, a ticket's rows to one destination
in the order the ticket decided them, is kept whichever relay holds which row (`_CLAIM`).
A relay behind on its rows overlaps its passes (`passes`): the next one claims while the
last one sends and settles, and the order holds between them as between relays.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import smtplib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.database import Pool, PoolConnection, encode_json
from activities.event_store import OUTBOX_CHANNEL, tell_changed
from activities.messages import MessageTemplates
from activities.outbox import CUSTOMER_MESSAGE_PREFIX, UNROUTABLE_PREFIX, handoff_recipient
from activities.signing import signed_headers
from workflows.activity_names import DELIVER_DUE
from workflows.contracts import CustomerMessage, DeliveryFailure, Handoff, RelayRound
from workflows.delivery_failures import SIGNAL
from workflows.policy import ServicePolicy, delivery_retry_at, staff_locale
from workflows.relay import ROUND

log = structlog.get_logger(__name__)

# Seconds between heartbeats while a pass delivers (the relay's heartbeat timeout is 30 s).
_ALIVE_EVERY = 5.0

SMTP_ROUTE = "smtp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class SmtpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str
    port: int = 25
    sender: str = "ticketflow@localhost"
    # Customers are opaque account ids here: the company's mail gateway maps the address.
    recipient: str = "{customer_id}@customers.invalid"
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None


class DeliveryConfig(BaseModel):
    """Where deliveries go. A row's destination is its channel (`email`, `app_chat`, …)
    for customer messages, the department's address (`queue://tech-oncall`) for hand-offs
    and `partner:<name>` for partners; `routes` maps a destination to a webhook URL or to
    `smtp`, and anything else goes to `webhook_url`."""

    model_config = ConfigDict(extra="forbid")

    webhook_url: str | None = None
    routes: dict[str, str] = Field(default_factory=dict)
    # HMAC-SHA256 key of the webhook signature (share it with the receivers).
    secret: SecretStr = SecretStr("")
    smtp: SmtpConfig | None = None
    batch: int = Field(default=50, ge=1, le=1000)
    # A relay is woken by every commit that queues rows (`NOTIFY ticketflow_outbox`); it
    # also looks this often, for retries coming due and a notification it missed.
    poll_interval: timedelta = timedelta(milliseconds=200)
    request_timeout: timedelta = timedelta(seconds=5)
    # Requests in flight to one webhook URL at a time: ten kept-alive connections serve a
    # pass's fifty rows for less CPU than fifty at once; per URL, so a route that hangs
    # holds only its own requests.
    requests_per_route: int = Field(default=10, ge=1)
    # A leased row another relay may take over if this one dies mid-delivery. A live
    # relay renews its rows' leases every third of it while their pass runs, so the lease
    # bounds how long a dead relay's rows wait, not how long a send may take.
    lease: timedelta = timedelta(seconds=10)
    # Outcomes of a pass's sends that end within this of the first unwritten one are
    # written in one statement (a pass of sends ending together: one statement).
    settle_window: timedelta = timedelta(milliseconds=50)
    round: timedelta = ROUND
    # Delivery activities the relay runs at once; each worker process picks some up, and
    # they share the outbox through its leases. Two, so that while a dead worker's
    # activity waits out its heartbeat timeout, the other one goes on delivering.
    relays: int = Field(default=2, ge=1, le=16)
    # Passes one relay runs at once. A pass waits on PostgreSQL for about half its time
    # (its claim, its settles' commits) while its process could send: the next pass
    # claims while the last still sends and settles. Order holds as between relays: a
    # claim takes no row while an earlier one to its destination is unsettled (`_CLAIM`).
    passes: int = Field(default=3, ge=1, le=16)

    @property
    def configured(self) -> bool:
        return self.webhook_url is not None or bool(self.routes)

    @model_validator(mode="after")
    def _signed(self) -> DeliveryConfig:
        webhooks = self.webhook_url is not None or any(
            r != SMTP_ROUTE for r in self.routes.values()
        )
        if webhooks and not self.secret.get_secret_value():
            raise ValueError("delivery.secret is required: every webhook delivery is signed")
        if any(r == SMTP_ROUTE for r in self.routes.values()) and self.smtp is None:
            raise ValueError("a destination is routed to smtp, but delivery.smtp is not set")
        return self


@dataclass(frozen=True)
class DueRow:
    id: int
    ticket_id: str
    dedupe_key: str
    kind: str
    destination: str
    payload: dict[str, Any]
    event_seq: int | None
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    permanent: bool = False
    receipt: dict[str, Any] | None = None
    error: str | None = None


Settlement = Literal["delivered", "retried", "failed"]


@dataclass(frozen=True)
class Settled:
    """What becomes of a row once its send has ended, to be written with its pass's
    others (`_SETTLE`): delivered, tried again after `wait`, or failed."""

    row: DueRow
    outcome: Settlement
    rendered: str | None = None
    locale: str | None = None
    receipt: dict[str, Any] | None = None
    error: str | None = None
    wait: timedelta | None = None


def words_of(
    key: str,
    kind: str,
    payload: dict[str, Any],
    templates: MessageTemplates,
    policy: ServicePolicy,
) -> tuple[str | None, str]:
    """What the outbox row `key` says, and in which locale: a customer message in the
    customer's language (times in the customer's zone, else the policy's); a hand-off in
    the company's (the policy's `staff_locale`, or its recipient's own), times in the
    policy's zone."""
    if kind.startswith(CUSTOMER_MESSAGE_PREFIX):
        rendered = templates.render(CustomerMessage.model_validate(payload), policy.time_zone)
        return rendered.locale, rendered.text
    handoff = Handoff.model_validate(payload)
    locale = staff_locale(policy, handoff_recipient(handoff, key))
    rendered = templates.render_handoff(handoff, locale, policy.time_zone)
    return rendered.locale, rendered.text


def _one_address(row: DueRow, smtp: SmtpConfig) -> str:
    """The one mailbox a row goes to: a hand-off's `mailto:` destination, or the customer's
    gateway address. Anything else (a comma, a second address, a line break smuggled in
    an id) is refused rather than sent."""
    if row.destination.startswith("mailto:"):
        spec = row.destination.removeprefix("mailto:")
    elif row.kind.startswith(CUSTOMER_MESSAGE_PREFIX):
        spec = smtp.recipient.format(customer_id=row.payload.get("customer_id", ""))
    else:
        raise DeliveryRefused(f"{row.destination} is routed to smtp but is no mailto: address")
    try:
        address = Address(addr_spec=spec)
    except (ValueError, IndexError, HeaderParseError):
        raise DeliveryRefused("the recipient is not one e-mail address") from None
    if address.addr_spec != spec or not address.domain:
        raise DeliveryRefused("the recipient is not one e-mail address")
    return spec


class DeliveryRefused(Exception):
    """The destination refused the row for good (or there is none): no retry helps."""


# Lease the due rows: undelivered, not failed, due, and first of their ticket for their
# destination (a row never overtakes an earlier one still on its way there).
#
# One destination's order is per ticket per destination (`channel_or_recipient`), in id
# order, which is the order the ticket decided its rows (`insert_rows_sql`): a customer
# reads a ticket's messages on one channel, and a department its work orders and
# reminders, as they were decided. Rows of different tickets to one destination (every
# customer on `app_chat`) have no order to keep, and waiting on each other would make
# every channel one queue. The order holds across relays and within a pass:
# - an earlier row still unsettled, leased by any relay or waiting out a retry's backoff,
#   keeps its later rows out of every claim until it is delivered or failed;
# - so a pass holds at most one row per ticket and destination, and its concurrent sends
#   cannot overtake each other (a ticket's k rows to one place take k passes);
# - two claims at once: the first locks the earlier row, the second skips it (SKIP
#   LOCKED) and, seeing it still undelivered, takes none of its later rows either.
#
# "First of its ticket for its destination" is a subquery per candidate, through the
# ticket's index, whatever PostgreSQL's statistics say. The statistics of an outbox are
# of delivered rows (a table of them, or a quiet hour when autovacuum analysed it), and a
# backlog grows faster than they catch up: believing no row undelivered, the planner
# turned a NOT EXISTS over the undelivered rows' partial indexes into a scan of the whole
# backlog for each candidate (130 ms a claim of 50 over 4,000 rows, quadratic beyond).
# `coalesce(...) IS NULL` keeps those indexes out of the subquery, and a scalar subquery
# is never turned into a join that could read the outbox's whole history.
_CLAIM = """
    WITH due AS (
        SELECT o.id FROM outbox o
        WHERE o.dispatched_at IS NULL AND o.failed_at IS NULL AND o.next_attempt_at <= now()
          AND o.id = (
              SELECT min(e.id) FROM outbox e
              WHERE e.ticket_id = o.ticket_id AND e.channel_or_recipient = o.channel_or_recipient
                AND coalesce(e.dispatched_at, e.failed_at) IS NULL
          )
        ORDER BY o.next_attempt_at, o.id
        LIMIT $1
        FOR UPDATE OF o SKIP LOCKED
    )
    UPDATE outbox SET attempts = outbox.attempts + 1, next_attempt_at = now() + $2::interval
    FROM due WHERE outbox.id = due.id
    RETURNING outbox.id, outbox.ticket_id, outbox.dedupe_key, outbox.kind,
        outbox.channel_or_recipient AS destination, outbox.payload, outbox.event_seq,
        outbox.attempts,
        outbox.created_at
"""

# Each ends the lease it names: `attempts` is the lease's token (the claim raised it), so
# a relay whose lease expired and was taken over cannot overwrite the new holder's result,
# and an outcome written twice (a settle retried after a lost answer) is a no-op.
_HELD = "id = $1 AND attempts = $2 AND dispatched_at IS NULL AND failed_at IS NULL"
_HAND_BACK = f"UPDATE outbox SET next_attempt_at = now() WHERE {_HELD}"
# The outcomes of a pass's ended sends, in one statement: delivered (the words as sent and
# the destination's receipt), retried (at its backoff) or failed (the words it would have
# said), each under the same guard as `_HELD`. Written with coalesce, as in `_CLAIM`, so
# the rows are found by their ids: on statistics that believe no row undelivered, the
# planner hashed the whole backlog's partial index for every settle and renewal.
_SETTLE = """
    UPDATE outbox o SET
        dispatched_at = CASE WHEN s.outcome = 'delivered' THEN now() END,
        failed_at = CASE WHEN s.outcome = 'failed' THEN now() END,
        next_attempt_at = CASE WHEN s.outcome = 'retried' THEN now() + s.wait
            ELSE o.next_attempt_at END,
        rendered = CASE WHEN s.outcome = 'retried' THEN o.rendered ELSE s.rendered END,
        locale = CASE WHEN s.outcome = 'delivered' THEN s.locale ELSE o.locale END,
        receipt = CASE WHEN s.outcome = 'delivered' THEN s.receipt::jsonb ELSE o.receipt END,
        last_error = s.error
    FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::text[], $8::interval[])
        AS s(id, attempts, outcome, rendered, locale, receipt, error, wait)
    WHERE o.id = s.id AND o.attempts = s.attempts
      AND coalesce(o.dispatched_at, o.failed_at) IS NULL
"""
# The pass's rows still held, their leases pushed on. A row settled meanwhile is left as
# it was settled: delivered or failed (set), or retried at its backoff (past the lease).
_RENEW = """
    UPDATE outbox o SET next_attempt_at = now() + $3::interval
    FROM unnest($1::bigint[], $2::int[]) AS held(id, attempts)
    WHERE o.id = held.id AND o.attempts = held.attempts
      AND coalesce(o.dispatched_at, o.failed_at) IS NULL
      AND o.next_attempt_at <= now() + $3::interval
"""


def _added(done: RelayRound, passed: RelayRound) -> RelayRound:
    return RelayRound(
        delivered=done.delivered + passed.delivered,
        retried=done.retried + passed.retried,
        failed=done.failed + passed.failed,
    )


def _outcomes(
    ended: Iterable[asyncio.Task[Settled]],
    sending: dict[asyncio.Task[Settled], DueRow],
    held: dict[int, DueRow],
) -> list[Settled]:
    """The outcomes of ended sends. A send cut (cancelled) has none: its row is handed
    back. One that broke (a bug) has none either: its lease runs out and it goes again."""
    outcomes = []
    for task in ended:
        if task.cancelled():
            continue
        broken = task.exception()
        if broken is not None:
            log.error("delivery broke", row=sending[task].dedupe_key, error=repr(broken))
            held.pop(sending[task].id, None)
            continue
        outcomes.append(task.result())
    return outcomes


class _Listening:
    """A relay's listening connection for one round (None: it only polls)."""

    def __init__(self, pool: Pool, conn: PoolConnection | None, woken: asyncio.Event) -> None:
        self._pool = pool
        self._conn = conn
        self._woken = woken

    def heard(self, *_: object) -> None:
        self._woken.set()

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            await conn.remove_listener(OUTBOX_CHANNEL, self.heard)
        await self._pool.release(conn)


class OutboxRelay:
    def __init__(
        self,
        pool: Pool,
        policy: ServicePolicy,
        templates: MessageTemplates,
        config: DeliveryConfig,
        client: Client | None,
    ) -> None:
        """`client` signals tickets about deliveries given up on (None: only logged)."""
        self._pool = pool
        self._policy = policy
        self._templates = templates
        self._config = config
        self._client = client
        # Made in the event loop at the first post (aiohttp binds a session to its loop).
        self._http: aiohttp.ClientSession | None = None
        self._lanes: dict[str, asyncio.Semaphore] = {}

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._config.request_timeout.total_seconds()),
                # The lanes bound requests per route; the connector need not bound them.
                connector=aiohttp.TCPConnector(limit=0),
            )
        return self._http

    # ------------------------------------------------------------ the activity

    @activity.defn(name=DELIVER_DUE)
    async def deliver_due(self) -> RelayRound:
        """Deliver due rows for one round, then report what was done. A worker shutting
        down ends the round at once: the next round goes to another worker's relay,
        instead of this one holding the worker for its whole graceful timeout."""
        return await self.deliver_for(
            self._config.round, activity.heartbeat, activity.wait_for_worker_shutdown()
        )

    async def deliver_for(
        self,
        duration: timedelta,
        alive: Callable[[int], None] = lambda _: None,
        stopping: Awaitable[None] | None = None,
    ) -> RelayRound:
        """Passes for `duration`, up to `passes` of them at once. The next pass claims as
        soon as the last one's claim came back full (more rows are due), while the last
        one still sends and settles; after a claim that was not full, it waits for the
        passes in flight, then to be woken (a commit queued rows, or a pass ended, which
        may have let the rows behind its own come due) or `poll_interval`. `alive` hears
        the count delivered so far (the activity's heartbeat). When `stopping` completes,
        the passes in flight are cut short and hand back their unsettled rows
        (`deliver_once`), and the round ends there; when `duration` is over, no pass
        starts and the round ends with the last."""
        done = RelayRound()
        ends = time.monotonic() + duration.total_seconds()
        stop: asyncio.Future[None] = (
            asyncio.ensure_future(stopping) if stopping is not None else asyncio.Future()
        )

        async def keep_alive() -> None:
            # A pass waits for its slowest row: the heartbeat must not.
            while True:
                alive(done.delivered)
                await asyncio.sleep(_ALIVE_EVERY)

        beating = asyncio.create_task(keep_alive())
        passes: set[asyncio.Task[RelayRound]] = set()
        woken = asyncio.Event()
        listening = await self._listen(woken)

        async def until(also: set[asyncio.Future[Any]], within: float | None = None) -> None:
            """Wait for `also`, a pass to end or the stop, and count the passes ended."""
            nonlocal done
            waits: set[asyncio.Future[Any]] = {stop, *passes, *also}
            await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
            for ended in [task for task in passes if task.done()]:
                passes.discard(ended)
                passed = ended.result()  # a pass that broke ends the round (and is retried)
                done = _added(done, passed)
                if passed != RelayRound():
                    woken.set()  # its rows are settled: the rows behind them may be due

        try:
            while time.monotonic() < ends and not stop.done():
                # Cleared before the claim: rows queued or let through from here on wake
                # the next look.
                woken.clear()
                claimed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
                passing = asyncio.create_task(self.deliver_once(claimed))
                passes.add(passing)
                look = time.monotonic() + self._config.poll_interval.total_seconds()
                while not (stop.done() or claimed.done() or passing.done()):
                    await until({claimed})
                # A full claim: rows wait, the next pass claims while this one sends. A
                # short one: the relay has caught up and goes one pass at a time, each
                # taking what was queued meanwhile (more passes would only cost more
                # claims and commits for the same rows).
                full = claimed.done() and claimed.result() >= self._config.batch
                room = self._config.passes if full else 1
                while not stop.done():
                    if len(passes) < room and (full or woken.is_set() or time.monotonic() >= look):
                        break
                    if passes:
                        await until(set())
                        continue
                    waking: asyncio.Future[Any] = asyncio.ensure_future(woken.wait())
                    try:
                        await until({waking}, within=max(0.0, look - time.monotonic()))
                    finally:
                        # Also when the round is cancelled while idle: a wait left
                        # pending is destroyed with a logged error.
                        waking.cancel()
            while passes and not stop.done():
                await until(set())
        finally:
            beating.cancel()
            stop.cancel()
            await listening.aclose()
            if passes:
                # Stopping, a pass broke, or the activity itself was cancelled: the
                # passes still running hand their rows back before the round ends.
                for task in passes:
                    task.cancel()
                await asyncio.wait(passes)
        return done

    async def _listen(self, woken: asyncio.Event) -> _Listening:
        """Hold a connection listening for queued rows while the round lasts; without one
        (PostgreSQL refused it), the round polls as before."""
        try:
            conn = await self._pool.acquire()
        except (TimeoutError, OSError, asyncpg.PostgresError) as error:
            log.warning("relay polls without waking", error=repr(error))
            return _Listening(self._pool, None, woken)
        listening = _Listening(self._pool, conn, woken)
        try:
            await conn.add_listener(OUTBOX_CHANNEL, listening.heard)
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("relay polls without waking", error=repr(error))
            await listening.aclose()
            return _Listening(self._pool, None, woken)
        return listening

    async def deliver_once(self, claimed: asyncio.Future[int] | None = None) -> RelayRound:
        """One pass: lease up to a batch of due rows, deliver them concurrently, and write
        their outcomes as the sends end, those ending within `settle_window` of each other
        in one statement. `claimed` hears how many rows it leased as soon as it has (the
        next pass may claim then). Cancelled (the worker stops), it writes what has ended
        and hands the rest back at once, so the next relay delivers them now rather than
        when their lease runs out."""
        records = await self._pool.fetch(_CLAIM, self._config.batch, self._config.lease)
        if claimed is not None:
            claimed.set_result(len(records))
        rows = [DueRow(**dict(record)) for record in records]
        # Renewed until written, not until sent: a row sent and not yet settled is still
        # this relay's, and another relay taking it over would send it twice.
        held = {row.id: row for row in rows}
        sending = {asyncio.create_task(self._deliver(row)): row for row in rows}
        renewing = asyncio.create_task(self._renew(held))
        window = self._config.settle_window.total_seconds()
        written: list[Settled] = []
        pending: set[asyncio.Task[Settled]] = set(sending)
        try:
            while pending:
                ended, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if pending:
                    more, pending = await asyncio.wait(pending, timeout=window)
                    ended |= more
                written += await self._settle(_outcomes(ended, sending, held), held)
        except asyncio.CancelledError:
            await self._cut_short(sending, held)
            raise
        finally:
            renewing.cancel()
            await asyncio.wait({renewing})
        settled = {s.row.ticket_id for s in written if s.outcome != "retried"}
        if settled:
            # A message delivered (or given up on) shows as such on the ticket's page.
            await tell_changed(self._pool, sorted(settled))
        return RelayRound(
            delivered=sum(1 for s in written if s.outcome == "delivered"),
            retried=sum(1 for s in written if s.outcome == "retried"),
            failed=sum(1 for s in written if s.outcome == "failed"),
        )

    async def _settle(self, outcomes: list[Settled], held: dict[int, DueRow]) -> list[Settled]:
        """Write these outcomes in one statement, and stop renewing their leases. If the
        database went away, the leases run out and the rows are sent again, under the
        same `Idempotency-Key`."""
        if not outcomes:
            return []
        try:
            await self._pool.execute(
                _SETTLE,
                [o.row.id for o in outcomes],
                [o.row.attempts for o in outcomes],
                [o.outcome for o in outcomes],
                [o.rendered for o in outcomes],
                [o.locale for o in outcomes],
                [encode_json(o.receipt or {}) for o in outcomes],
                [o.error for o in outcomes],
                [o.wait for o in outcomes],
            )
        except Exception as error:  # the database went away: the leases expire instead
            log.error("delivery bookkeeping failed", rows=len(outcomes), error=repr(error))
            written = []
        else:
            written = outcomes
        # Not when cancelled mid-write: the pass's way out writes these again.
        for outcome in outcomes:
            held.pop(outcome.row.id, None)
        return written

    async def _cut_short(
        self, sending: dict[asyncio.Task[Settled], DueRow], held: dict[int, DueRow]
    ) -> None:
        """The pass is cancelled: the sends still running are cut, the outcomes of the
        ended ones written (again, if their write was the one cut: a no-op then), and the
        rows cut handed back."""
        running = [task for task in sending if not task.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)
        ended = [task for task in sending if sending[task].id in held]
        await self._settle(_outcomes(ended, sending, held), held)
        await self._hand_back([row for row in sending.values() if row.id in held])

    async def _renew(self, held: dict[int, DueRow]) -> None:
        """While the pass runs, keep the leases of the rows it has not settled: a relay
        that died stops renewing, and its rows go on after one lease."""
        lease = self._config.lease
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            rows = list(held.values())
            if not rows:
                continue
            try:
                await self._pool.execute(
                    _RENEW, [row.id for row in rows], [row.attempts for row in rows], lease
                )
            except (OSError, asyncpg.PostgresError) as error:
                # The database went away: the leases run out, and another relay (or this
                # one's next pass) sends those rows again under the same Idempotency-Key.
                log.warning("could not renew leases", rows=len(rows), error=repr(error))

    async def _hand_back(self, rows: list[DueRow]) -> None:
        """End these rows' leases now (they may have reached their destination: the
        next relay sends them again under the same `Idempotency-Key`)."""
        if not rows:
            return
        try:
            await self._pool.executemany(_HAND_BACK, [(row.id, row.attempts) for row in rows])
        except Exception as error:  # the database went away: the leases expire instead
            log.warning("could not hand rows back", rows=len(rows), error=repr(error))
        else:
            log.info("rows handed back to the next relay", rows=len(rows))

    # ------------------------------------------------------------ one row

    async def _deliver(self, row: DueRow) -> Settled:
        """Send the row and say what becomes of it; its pass writes that."""
        logger = log.bind(ticket_id=row.ticket_id, row=row.dedupe_key, destination=row.destination)
        locale, text = None, None
        try:
            try:
                locale, text = self._words(row)
            except Exception as unsayable:  # a template that cannot say these parameters
                raise DeliveryRefused(f"cannot render {row.kind}: {unsayable}") from None
            async with asyncio.timeout(self._send_deadline()):
                outcome = await self._send(row, locale, text)
        except DeliveryRefused as refused:
            outcome = Outcome(delivered=False, permanent=True, error=str(refused))
        except Exception as broken:  # an outage (or a bug): the row is tried again
            outcome = Outcome(delivered=False, error=f"{type(broken).__name__}: {broken}")
        if outcome.delivered:
            logger.info("delivered", kind=row.kind, attempts=row.attempts)
            return Settled(row, "delivered", text, locale, outcome.receipt)
        error = (outcome.error or "unknown error")[:1000]
        age = datetime.now(UTC) - row.created_at
        wait = delivery_retry_at(self._policy, row.attempts)
        budget = self._policy.delivery.give_up_after / self._policy.time_scale
        if not outcome.permanent and age + wait <= budget:
            logger.warning("delivery failed; trying again", error=error, attempts=row.attempts)
            return Settled(row, "retried", error=error, wait=wait)
        if not await self._report(row, error):
            return Settled(row, "retried", error=error, wait=wait)
        logger.error("delivery given up", error=error, attempts=row.attempts)
        return Settled(row, "failed", rendered=text, error=error)

    def _words(self, row: DueRow) -> tuple[str | None, str]:
        return words_of(row.dedupe_key, row.kind, row.payload, self._templates, self._policy)

    async def _send(self, row: DueRow, locale: str | None, text: str) -> Outcome:
        if row.destination.startswith(UNROUTABLE_PREFIX):
            raise DeliveryRefused(f"no destination is configured for {row.destination}")
        route = self._config.routes.get(row.destination, self._config.webhook_url)
        if route is None:
            # Not refused: configuration may name one later, and the row waits for it.
            return Outcome(delivered=False, error=f"no route for {row.destination}")
        if route == SMTP_ROUTE:
            return await self._mail(row, locale, text)
        lane = self._lanes.setdefault(route, asyncio.Semaphore(self._config.requests_per_route))
        async with lane:
            return await self._post(route, row, locale, text)

    async def _post(self, url: str, row: DueRow, locale: str | None, text: str) -> Outcome:
        body = json.dumps(
            {
                "id": row.dedupe_key,
                "ticket_id": row.ticket_id,
                "event_seq": row.event_seq,
                "kind": row.kind,
                "destination": row.destination,
                "locale": locale,
                "text": text,
                "queued_at": row.created_at.isoformat(),
                "payload": row.payload,
            },
            ensure_ascii=False,
        ).encode()
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: row.dedupe_key,
            **signed_headers(self._config.secret.get_secret_value(), body),
        }
        async with self._session().post(url, data=body, headers=headers) as response:
            status = response.status
            await response.read()  # the connection goes back to the pool for the next row
        receipt = {"status": status, "at": datetime.now(UTC).isoformat()}
        if 200 <= status < 300:
            return Outcome(delivered=True, receipt=receipt)
        # The URL's host only: a query may carry a token, and the body may echo the message.
        error = f"HTTP {status} from {urlsplit(url).hostname}"
        # A refusal (bad signature, unknown recipient) will not change; a busy or broken
        # receiver might.
        refused = 400 <= status < 500 and status not in (408, 429)
        return Outcome(delivered=False, permanent=refused, receipt=receipt, error=error)

    async def _mail(self, row: DueRow, locale: str | None, text: str) -> Outcome:
        smtp = self._config.smtp
        if smtp is None:
            raise DeliveryRefused(f"{row.destination} is routed to smtp, but no SMTP is set")
        message = EmailMessage()
        message["From"] = smtp.sender
        message["To"] = _one_address(row, smtp)
        message["Subject"] = (
            self._templates.subject(locale or self._templates.default_locale)
            if row.kind.startswith(CUSTOMER_MESSAGE_PREFIX)
            else self._templates.staff_subject(locale or self._policy.staff_locale)
        )
        message["Message-ID"] = f"<{row.dedupe_key}@ticketflow>"
        message[IDEMPOTENCY_HEADER] = row.dedupe_key
        message.set_content(text)

        def send() -> dict[str, Any]:
            with smtplib.SMTP(smtp.host, smtp.port, timeout=self._timeout()) as server:
                if smtp.starttls:
                    server.starttls()
                if smtp.username and smtp.password:
                    server.login(smtp.username, smtp.password.get_secret_value())
                refused = server.send_message(message)
            return {"smtp": "accepted", "refused": sorted(refused)}

        try:
            receipt = await asyncio.to_thread(send)
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryRefused("SMTP refused the recipient") from None
        return Outcome(delivered=True, receipt=receipt)

    def _timeout(self) -> float:
        return self._config.request_timeout.total_seconds()

    def _send_deadline(self) -> float:
        """One send, all steps included (the renewed lease keeps other relays off it)."""
        return self._timeout() * 3

    async def _report(self, row: DueRow, error: str) -> bool:
        """Tell the ticket; False if Temporal could not be reached (the row waits)."""
        if self._client is None:
            return True
        failure = DeliveryFailure(
            dedupe_key=row.dedupe_key,
            kind=row.kind.removeprefix(CUSTOMER_MESSAGE_PREFIX),
            destination=row.destination,
            attempts=row.attempts,
            error=error[:500],
        )
        try:
            await self._client.get_workflow_handle(row.ticket_id).signal(SIGNAL, failure)
        except RPCError as rpc:
            if rpc.status is RPCStatusCode.NOT_FOUND:
                # The ticket's run has ended: the failed row is all that is left to see.
                log.error("delivery failed after its ticket ended", ticket_id=row.ticket_id)
                return True
            log.warning("cannot report a failed delivery yet", ticket_id=row.ticket_id)
            return False
        return True
