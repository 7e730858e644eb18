"""Part 8: the agents' workspace at /app, over real HTTP, as a browser uses it.

- The queue page with N tickets in the read model (100,000 by default): a schema of its
  own, its `tickets` table COPYed full of generated rows (bench/workspace_seed.py), read
  through an API served on that schema. Every view and a few filters, one request at a time;
  the figure is the server's own time (`Server-Timing: app;dur=`).
- The ticket page of real tickets the bench's worker ran (replies, a customer's message,
  work orders, a note), through an API served on the run's schema: Temporal's view,
  the record, deliveries, the customer's other tickets, suggestions.
- Live changes: signed-in clients hold `/app/live` open; a note posted through /app
  is timed to the `tickets` event naming its ticket at every client, then to each
  client's queue read again (GET /app/queue, at the seeded schema's size).

The API runs in this process (`api.server.serve`, uvicorn on a free port), beside the
simulated clients: its figures include their share of the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

import asyncpg
import httpx
from temporalio.client import Client

from activities.database import Pool, create_pool, migrate, schema_for_run
from activities.event_store import TICKETS_CHANNEL
from api.access import Caller, KeyRing, hash_key, new_key
from api.client import TicketClient
from api.read_model import TicketFilter
from api.server import serve
from api.settings import ApiConfig, ApiKeyEntry, ApiSettings
from api.workspace.queue import read_queue, view_named
from api.workspace.shared_reads import SharedReads
from bench.lifecycle import open_ticket
from bench.report import Report, mib, ms
from bench.throughput import percentile
from bench.workspace_seed import AGENTS, SUBJECTS, Seeded, policy_of_ten, seed
from workers.devstack import free_port
from workflows.contracts import AddNote, CustomerReply, Dispatch, Intake, Respond
from workflows.policy import ServicePolicy, tag_for
from workflows.primitives import Actor, ContextSnapshot
from workflows.vocabulary import (
    Category,
    Channel,
    CustomerReplyKind,
    Priority,
    Role,
    Tier,
    Topic,
)

# Targets of the workspace's issue: the server's time for a page (Server-Timing), and a
# change reaching every open page.
QUEUE_PAGE_TARGET_MS = 150.0
TICKET_PAGE_TARGET_MS = 200.0
LIVE_P99_TARGET_S = 1.0
PART = "8 workspace"

ME = AGENTS[7]  # the agent whose queue is read ("mine")
OPERATOR = "supervisor-01"
SERVER_TIMING = re.compile(r"app;dur=([0-9.]+)")
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
ROUND_TIMEOUT_S = 15.0


# ---------------------------------------------------------------- serving and signing in


@dataclass(frozen=True)
class Keys:
    """An agent key per seeded agent and an operator key, as configuration holds them."""

    by_name: dict[str, str]

    @classmethod
    def make(cls) -> Keys:
        return cls({name: new_key() for name in (*AGENTS, OPERATOR)})

    def settings(self) -> ApiSettings:
        return ApiSettings(
            keys=[
                ApiKeyEntry(
                    name=name, role="operator" if name == OPERATOR else "agent", sha256=hash_key(k)
                )
                for name, k in self.by_name.items()
            ]
        )

    def caller(self, name: str) -> Caller:
        found = KeyRing(self.settings().keys).authenticate(self.by_name[name])
        assert found is not None
        return found


@contextlib.asynccontextmanager
async def served(
    client: Client, database_url: str, task_queue: str, policy: ServicePolicy, keys: Keys
) -> AsyncIterator[str]:
    """The API as `ticketflow api` serves it, on a free port, until the block ends."""
    port = free_port()
    config = ApiConfig(
        task_queue=task_queue, policy=policy, api=keys.settings().model_copy(update={"port": port})
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve(config, client, stop, database_url), name=f"api-{port}")
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as probe:
            deadline = time.monotonic() + 30
            while True:
                if task.done():
                    task.result()  # raises what stopped it
                    raise RuntimeError("the API stopped before it served")
                with contextlib.suppress(httpx.TransportError):
                    if (await probe.get(f"{url}/healthz")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("the API did not answer /healthz within 30 s")
                await asyncio.sleep(0.05)
        yield url
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@dataclass
class Browser:
    """One signed-in browser: its cookies and the page's CSRF token."""

    http: httpx.AsyncClient
    csrf: str


async def sign_in(url: str, key: str) -> Browser:
    """As a person does: the form (its cookie and hidden field), the key, the queue page."""
    # Idle connections end on our side first: uvicorn closes them after 5 s, and a request
    # sent on one as it closes fails with a read error.
    http = httpx.AsyncClient(
        base_url=url,
        timeout=httpx.Timeout(30.0, read=None),
        limits=httpx.Limits(keepalive_expiry=2.0),
    )
    form = await http.get("/app/signin")
    form.raise_for_status()
    token = http.cookies.get("tf_signin", path="/app/signin") or ""
    answer = await http.post("/app/signin", data={"csrf": token, "key": key})
    if answer.status_code != 303:
        await http.aclose()
        raise RuntimeError(f"sign-in answered {answer.status_code}: {answer.text[:200]}")
    page = await http.get("/app/", headers={"Accept": "text/html"})
    found = CSRF_META.search(page.text)
    if page.status_code != 200 or found is None:
        await http.aclose()
        raise RuntimeError(f"the queue page after sign-in answered {page.status_code}")
    return Browser(http, found.group(1))


def server_ms(response: httpx.Response) -> float:
    found = SERVER_TIMING.search(response.headers.get("server-timing", ""))
    if found is None:
        raise RuntimeError(f"{response.request.url} answered without Server-Timing")
    return float(found.group(1))


@dataclass
class Timed:
    """Server times, ms: all of them, and by kind of request."""

    samples: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=dict)

    def add(self, kind: str, value: float) -> None:
        self.samples.append(value)
        self.by_kind.setdefault(kind, []).append(value)

    def p(self, q: float) -> float:
        return percentile(self.samples, q)

    @property
    def worst_kind(self) -> str:
        return max(self.by_kind, key=lambda kind: percentile(self.by_kind[kind], 50))


# ---------------------------------------------------------------- 1. the queue page


@dataclass(frozen=True)
class QueueRequest:
    who: str
    view: str
    chosen: dict[str, str]

    @property
    def kind(self) -> str:
        return "&".join([f"view={self.view}", *(f"{k}={v}" for k, v in self.chosen.items())])

    def filters(self) -> TicketFilter:
        """The filters as the route reads them from the query string."""

        def one(name: str) -> list[str]:
            return [self.chosen[name]] if name in self.chosen else []

        return TicketFilter(
            priority=one("priority"),
            category=one("category"),
            topic=one("topic"),
            tag=one("tag"),
            channel=one("channel"),
            tier=one("tier"),
            department=self.chosen.get("department"),
        )


VIEWS = (
    "mine",
    "unassigned",
    "breaching",
    "overdue",
    "waiting_customer",
    "waiting_department",
    "escalated",
    "all",
)


def queue_requests(policy: ServicePolicy) -> list[QueueRequest]:
    """Every view (the escalation ladder is the operator's) with no filter and with a few
    an agent would pick."""
    tag = tag_for(policy, Category.TECHNICAL_FAULT, Topic.PAYMENT, Priority.A)
    filters: list[dict[str, str]] = [
        {},
        {"priority": "A"},
        {"category": "technical_fault", "topic": "payment"},
        {"channel": "hotline", "tier": "vip"},
        {"department": "tech"},
        {"tag": tag},
    ]
    return [
        QueueRequest(OPERATOR if view == "escalated" else ME, view, chosen)
        for chosen in filters
        for view in VIEWS
    ]


@dataclass(frozen=True)
class QueueTimes:
    timed: Timed
    requests: dict[str, QueueRequest]

    @property
    def slowest(self) -> QueueRequest:
        return self.requests[self.timed.worst_kind]


async def queue_times(
    browsers: dict[str, Browser], policy: ServicePolicy, requests: int
) -> QueueTimes:
    plan = queue_requests(policy)
    for warm in plan[: len(VIEWS)]:  # templates compiled, connections opened
        (await browsers[warm.who].http.get("/app/", params={"view": warm.view})).raise_for_status()
    timed = Timed()
    for number in range(requests):
        request = plan[number % len(plan)]
        response = await browsers[request.who].http.get(
            "/app/", params={"view": request.view, **request.chosen}
        )
        response.raise_for_status()
        timed.add(request.kind, server_ms(response))
    return QueueTimes(timed, {request.kind: request for request in plan})


@dataclass(frozen=True)
class Explained:
    kind: str
    query: str  # which of the page's queries: counts or rows
    plan: list[str]
    execution_ms: float


class _Recorder:
    """A pool that keeps the statements the queue runs, to explain the slowest."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self.statements: list[tuple[str, float, str, tuple[Any, ...]]] = []

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        started = time.perf_counter()
        rows: list[asyncpg.Record] = await self._pool.fetch(sql, *args)
        self.statements.append(("rows", time.perf_counter() - started, sql, args))
        return rows

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        started = time.perf_counter()
        row: asyncpg.Record | None = await self._pool.fetchrow(sql, *args)
        self.statements.append(("counts", time.perf_counter() - started, sql, args))
        return row


class _Unheard:
    epoch = 0
    listening = False

    def start(self) -> None:
        pass


async def explain_slowest(
    pool: Pool, keys: Keys, request: QueueRequest, page_size: int
) -> Explained:
    """EXPLAIN (ANALYZE, BUFFERS) of the slower of the two queries behind the page."""
    caller = keys.caller(request.who)
    recorder = _Recorder(pool)
    view = view_named(caller, request.view)
    # Read as one page alone reads it: nothing shared, no hub listening.
    alone = SharedReads(cast(Pool, recorder), _Unheard(), timedelta(0))
    await read_queue(alone, caller, view, request.filters(), page_size, None)
    query, _, sql, args = max(recorder.statements, key=lambda statement: statement[1])
    rows = await pool.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *args)
    plan = [str(row[0]) for row in rows]
    execution = next((line for line in plan if line.startswith("Execution Time")), "")
    found = re.search(r"([0-9.]+) ms", execution)
    return Explained(request.kind, query, plan, float(found.group(1)) if found else float("nan"))


# ---------------------------------------------------------------- 2. the ticket page


def _intake(key: str, number: int) -> Intake:
    return Intake(
        idempotency_key=key,
        channel=list(Channel)[number % len(Channel)],
        # A few customers with several tickets each: the page lists the others.
        customer_id=f"cust-ws-{number % 7}",
        tier=Tier.VIP if number % 5 == 0 else Tier.STANDARD,
        subject=SUBJECTS[number % len(SUBJECTS)],
        description=SUBJECTS[(number + 3) % len(SUBJECTS)] + "。请尽快处理, 谢谢",
        context=ContextSnapshot(
            device_model="Pixel 8", os_version="Android 15", app_version="7.3.0"
        ),
    )


async def open_tickets(
    tickets: TicketClient, count: int, prefix: str, concurrency: int = 8
) -> list[str]:
    """Real tickets through the worker: a reply, the customer's answer, a work order
    (two departments on every third), an internal note. They stay open."""
    numbers = iter(range(count))
    opened: list[str] = []

    async def one(number: int) -> str:
        ticket_intake = _intake(f"{prefix}-{number}", number)
        ticket_id = (await open_ticket(tickets, ticket_intake)).ticket_id
        agent = Actor(id=AGENTS[number % len(AGENTS)], role=Role.AGENT)
        await tickets.act(ticket_id, Respond(actor=agent, message="您好, 正在为您查看, 请稍候"))
        await tickets.customer_reply(
            ticket_id,
            CustomerReply(
                reply_id="r1", kind=CustomerReplyKind.MESSAGE, text="还是不行, 截图已经发了"
            ),
        )
        departments = ["tech", "finance"] if number % 3 == 0 else ["tech"]
        await tickets.act(
            ticket_id, Dispatch(actor=agent, departments=departments, note="请排查支付网关报错")
        )
        await tickets.act(ticket_id, AddNote(actor=agent, text="客户很着急, 已经第二次来问"))
        return ticket_id

    async def worker() -> None:
        for number in numbers:
            opened.append(await one(number))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return opened


async def settle(tickets: TicketClient, database_url: str, ticket_ids: Sequence[str]) -> float:
    """Until every event the tickets decided on is stored (their intake's classification
    and suggestions ran): the pages are timed on a worker that has warmed up. Returns the
    seconds waited: the worker's cold start (its sentence encoder) is in there."""
    started = time.perf_counter()
    conn = await asyncpg.connect(database_url)
    try:
        for ticket_id in ticket_ids:
            deadline = time.monotonic() + 120
            while True:
                view = await tickets.view(ticket_id)
                stored = await conn.fetchval(
                    "SELECT count(*) FROM ticket_events WHERE ticket_id = $1", ticket_id
                )
                if stored == view.events_recorded:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{ticket_id} did not settle within 120 s")
                await asyncio.sleep(0.1)
    finally:
        await conn.close()
    return time.perf_counter() - started


@dataclass(frozen=True)
class PageTimes:
    first_ms: float
    timed: Timed


async def page_times(browser: Browser, ticket_ids: Sequence[str], requests: int) -> PageTimes:
    """The first request (it builds the suggestions' index) apart, then round robin."""
    first = await browser.http.get(f"/app/tickets/{ticket_ids[0]}")
    first.raise_for_status()
    timed = Timed()
    for number in range(requests):
        response = await browser.http.get(f"/app/tickets/{ticket_ids[number % len(ticket_ids)]}")
        response.raise_for_status()
        timed.add("ticket", server_ms(response))
    return PageTimes(server_ms(first), timed)


# ---------------------------------------------------------------- 3. live changes


@dataclass
class Watcher:
    """A browser with the queue open: its live stream, and the queue it reads again."""

    live: Browser
    queue: Browser
    expect: str = ""
    heard: dict[str, float] = field(default_factory=dict)
    reread: dict[str, float] = field(default_factory=dict)
    reread_server_ms: dict[str, float] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    listening: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def listen(self) -> None:
        headers = {"Accept": "text/event-stream"}
        async with self.live.http.stream("GET", "/app/live", headers=headers) as response:
            response.raise_for_status()
            event = ""
            async for line in response.aiter_lines():
                if line.startswith("retry:"):  # sent once the hub listens
                    self.listening.set()
                elif line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event == "tickets":
                    self._heard(json.loads(line.removeprefix("data: ")))
                elif not line:
                    event = ""

    def _heard(self, ticket_ids: list[str]) -> None:
        now = time.perf_counter()
        wanted = self.expect
        if wanted in ticket_ids and wanted not in self.heard:
            self.heard[wanted] = now
            task = asyncio.create_task(self._read_queue(wanted))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _read_queue(self, ticket_id: str) -> None:
        try:
            response = await self.queue.http.get("/app/queue", params={"view": "all"})
            response.raise_for_status()
            self.reread[ticket_id] = time.perf_counter()
            self.reread_server_ms[ticket_id] = server_ms(response)
        finally:
            self.done.set()


@dataclass
class LiveFigures:
    clients: int
    rounds: int
    failed_rounds: int
    # Per client and round, seconds after the note was posted.
    heard_s: list[float]
    reread_s: list[float]
    reread_server_ms: list[float]
    # Per round: the slowest client, and PostgreSQL's notification to a plain listener.
    all_heard_s: list[float]
    notified_s: list[float]
    answered_s: list[float]
    # Per client and round: the notification to the client (the stream's own share).
    stream_s: list[float]


async def _all_listening(watchers: Sequence[Watcher], streams: list[asyncio.Task[None]]) -> None:
    """Until every stream is subscribed; a stream that ended says why."""
    deadline = time.monotonic() + 30
    while not all(w.listening.is_set() for w in watchers):
        for stream in streams:
            if stream.done():
                stream.result()
                raise RuntimeError("a live stream ended before it was subscribed")
        if time.monotonic() > deadline:
            listening = sum(w.listening.is_set() for w in watchers)
            raise RuntimeError(f"{listening} of {len(watchers)} live streams subscribed in 30 s")
        await asyncio.sleep(0.05)


async def live_latency(
    actor: Browser,
    watchers: Sequence[Watcher],
    ticket_ids: Sequence[str],
    rounds: int,
    database_url: str,
) -> LiveFigures:
    """Post a note, then wait until every watcher heard of it and read its queue again."""
    notified: dict[str, float] = {}
    expect = ""

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: object) -> None:
        if payload == expect and expect not in notified:
            notified[expect] = time.perf_counter()

    listener = await asyncpg.connect(database_url)
    await listener.add_listener(TICKETS_CHANNEL, on_notify)
    streams = [asyncio.create_task(w.listen()) for w in watchers]
    figures = LiveFigures(len(watchers), rounds, 0, [], [], [], [], [], [], [])
    try:
        await _all_listening(watchers, streams)
        for number in range(rounds):
            ticket_id = ticket_ids[number % len(ticket_ids)]
            key = f"{ticket_id}#{number}"
            expect = ticket_id
            notified.pop(ticket_id, None)
            for watcher in watchers:
                watcher.expect = ticket_id
                watcher.heard.pop(ticket_id, None)
                watcher.reread.pop(ticket_id, None)
                watcher.reread_server_ms.pop(ticket_id, None)
                watcher.done.clear()
            posted = time.perf_counter()
            answer = await actor.http.post(
                f"/app/tickets/{ticket_id}/actions/add_note",
                data={"action_id": f"bench-live-{key}".replace("#", "-"), "text": f"note {key}"},
                headers={"X-CSRF-Token": actor.csrf},
            )
            answered = time.perf_counter()
            try:
                answer.raise_for_status()
                async with asyncio.timeout(ROUND_TIMEOUT_S):
                    await asyncio.gather(*(w.done.wait() for w in watchers))
            except (httpx.HTTPStatusError, TimeoutError):
                figures.failed_rounds += 1
                continue
            heard = [w.heard[ticket_id] - posted for w in watchers]
            figures.heard_s += heard
            figures.reread_server_ms += [
                w.reread_server_ms[ticket_id] for w in watchers if ticket_id in w.reread_server_ms
            ]
            figures.reread_s += [
                w.reread[ticket_id] - posted for w in watchers if ticket_id in w.reread
            ]
            figures.all_heard_s.append(max(heard))
            figures.answered_s.append(answered - posted)
            if ticket_id in notified:
                figures.notified_s.append(notified[ticket_id] - posted)
                figures.stream_s += [w.heard[ticket_id] - notified[ticket_id] for w in watchers]
    finally:
        for stream in streams:
            stream.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
        await listener.close()
    return figures


# ---------------------------------------------------------------- the part


@dataclass
class WorkspaceFigures:
    seeded: Seeded
    queue: QueueTimes
    explained: Explained
    page_tickets: int
    settled_s: float
    page: PageTimes
    live: LiveFigures
    seconds: float
    # The machine's 1-minute load average as the part ended (the API shares it).
    load_average: float


@dataclass(frozen=True)
class WorkspacePlan:
    rows: int
    queue_requests: int
    page_tickets: int
    page_requests: int
    live_clients: int
    live_rounds: int


async def measure(
    plan: WorkspacePlan,
    client: Client,
    database_url: str,
    task_queue: str,
    tickets: TicketClient,
    prefix: str,
    say: Callable[[str], None],
) -> WorkspaceFigures:
    started = time.perf_counter()
    keys = Keys.make()
    policy = ServicePolicy()
    seeded_policy = policy_of_ten()
    async with contextlib.AsyncExitStack() as stack:
        schema = await stack.enter_async_context(schema_for_run(database_url, "bench_workspace"))
        seeded_pool = await create_pool(schema.url)
        stack.push_async_callback(seeded_pool.close)
        await migrate(seeded_pool)
        say(f"workspace: opening {plan.page_tickets} tickets through the worker")
        ticket_ids = await open_tickets(tickets, plan.page_tickets, prefix)

        async def stop_tickets() -> None:
            # Nothing of this part runs on into the next (their timers would fire there).
            for ticket_id in ticket_ids:
                await tickets.stop(ticket_id, "bench part 8 done")

        stack.push_async_callback(stop_tickets)
        say(f"workspace: seeding {plan.rows:,} tickets into schema {schema.name}")
        seeded = await seed(schema.url, plan.rows, seeded_policy)
        settled_s = await settle(tickets, database_url, ticket_ids)

        queue_url = await stack.enter_async_context(
            served(client, schema.url, task_queue, seeded_policy, keys)
        )
        main_url = await stack.enter_async_context(
            served(client, database_url, task_queue, policy, keys)
        )
        browsers: list[Browser] = []

        async def close_browsers() -> None:
            await asyncio.gather(*(b.http.aclose() for b in browsers))

        stack.push_async_callback(close_browsers)

        async def browser(url: str, name: str) -> Browser:
            signed_in = await sign_in(url, keys.by_name[name])
            browsers.append(signed_in)
            return signed_in

        say(f"workspace: queue page, {plan.queue_requests} requests over every view")
        seeded_browsers = {name: await browser(queue_url, name) for name in (ME, OPERATOR)}
        queue = await queue_times(seeded_browsers, seeded_policy, plan.queue_requests)
        size = keys.settings().workspace.page_size
        explained = await explain_slowest(seeded_pool, keys, queue.slowest, size)

        say(f"workspace: ticket page, {plan.page_requests} requests")
        page = await page_times(await browser(main_url, ME), ticket_ids, plan.page_requests)

        say(f"workspace: live changes to {plan.live_clients} clients, {plan.live_rounds} notes")
        names = [AGENTS[number % len(AGENTS)] for number in range(plan.live_clients)]
        lives = await asyncio.gather(*(browser(main_url, name) for name in names))
        queues = await asyncio.gather(*(browser(queue_url, name) for name in names))
        watchers = [Watcher(live, queue) for live, queue in zip(lives, queues, strict=True)]
        actor = await browser(main_url, OPERATOR)
        live = await live_latency(actor, watchers, ticket_ids, plan.live_rounds, database_url)
    return WorkspaceFigures(
        seeded,
        queue,
        explained,
        len(ticket_ids),
        settled_s,
        page,
        live,
        time.perf_counter() - started,
        os.getloadavg()[0],
    )


def add_to(report: Report, f: WorkspaceFigures) -> None:
    seeded, queue, page, live, explained = f.seeded, f.queue.timed, f.page, f.live, f.explained
    report.add(
        PART,
        "read model for the queue: tickets / open (COPY time, table size)",
        f"{seeded.rows:,} / {seeded.open:,} ({seeded.seconds:.1f} s, {mib(seeded.table_mib)})",
    )
    report.add(
        PART,
        f"queue page server time p50 / p95 / max ({len(queue.by_kind)} views x filters, "
        f"{len(queue.samples)} requests)",
        " / ".join(ms(v) for v in (queue.p(50), queue.p(95), max(queue.samples))),
        f"p95 <= {QUEUE_PAGE_TARGET_MS:.0f} ms",
        queue.p(95) <= QUEUE_PAGE_TARGET_MS,
    )
    report.add(
        PART,
        f"slowest queue page ({explained.kind}) p50; its slower query ({explained.query}) "
        "in EXPLAIN ANALYZE",
        f"{ms(percentile(queue.by_kind[explained.kind], 50))}; {ms(explained.execution_ms)}",
    )
    report.facts["workspace_explain"] = {
        "kind": explained.kind,
        "query": explained.query,
        "plan": explained.plan,
    }
    if queue.p(95) > QUEUE_PAGE_TARGET_MS:
        report.note(
            f"Part 8's slowest queue page ({explained.kind}), its {explained.query} query: "
            + " | ".join(line.strip() for line in explained.plan[:12])
        )
    times = page.timed
    report.add(
        PART,
        f"ticket page server time p50 / p95 / max ({f.page_tickets} real tickets, "
        f"{len(times.samples)} requests)",
        " / ".join(ms(v) for v in (times.p(50), times.p(95), max(times.samples)))
        + f" (first {ms(page.first_ms)})",
        f"p95 <= {TICKET_PAGE_TARGET_MS:.0f} ms",
        times.p(95) <= TICKET_PAGE_TARGET_MS,
    )
    report.facts["workspace_elapsed_s"] = round(f.seconds, 1)
    report.facts["workspace_load_average"] = f.load_average
    failed = f", {live.failed_rounds} of {live.rounds} rounds failed" if live.failed_rounds else ""
    if not live.heard_s:
        report.add(PART, "live changes", f"nothing heard{failed}", "", False)
        return

    def quantiles(values: list[float], *qs: float) -> str:
        return " / ".join(ms(percentile(values, q) * 1000) for q in qs)

    report.add(
        PART,
        f"live: note posted -> `tickets` event at each of {live.clients} clients, p50 / p99 / max",
        quantiles(live.heard_s, 50, 99, 100) + f" (n={len(live.heard_s)}{failed})",
        f"p99 <= {LIVE_P99_TARGET_S * 1000:.0f} ms",
        percentile(live.heard_s, 99) <= LIVE_P99_TARGET_S and not live.failed_rounds,
    )
    report.add(
        PART,
        "live: of which posted -> answered; posted -> PostgreSQL's notification, p50 / p99",
        f"{quantiles(live.answered_s, 50, 99)}; {quantiles(live.notified_s, 50, 99)}",
    )
    report.add(
        PART,
        "live: notification -> each client (hub, 100 ms coalescing, SSE), p50 / p99",
        quantiles(live.stream_s, 50, 99),
    )
    report.add(
        PART,
        f"live: + each client reading its queue again ({seeded.rows:,} rows, "
        f"{live.clients} at once), p50 / p99 / max",
        quantiles(live.reread_s, 50, 99, 100) + f" (n={len(live.reread_s)})",
    )
    served = live.reread_server_ms
    report.add(
        PART,
        "live: those queue reads' server time p50 / p99 / max",
        " / ".join(ms(percentile(served, q)) for q in (50, 99, 100)),
    )
    report.note(
        f"Part 8 times the ticket page once its {f.page_tickets} tickets had settled (a "
        f"further {f.settled_s:.1f} s after seeding the read model): before that, pages wait "
        "for a worker still loading its sentence encoder for their intake. The API served "
        f"from the bench's own process; the machine's load average was {f.load_average:.1f} "
        f"on {os.cpu_count()} cores as the part ended."
    )
