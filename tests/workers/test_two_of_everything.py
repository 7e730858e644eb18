"""More than one of everything (issue 25): two workers, two API processes and their two
relays on one Temporal server and one PostgreSQL.

Real processes, started as an operator starts them: `ticketflow worker` twice and
`ticketflow api` twice (uvicorn, each on its own port), with their settings in the
environment, against the session's dev server and a schema of this module's own (the
relay delivers every due row it sees). Deliveries go to the dev receiver
(`workers.receiver`), which keeps one copy per `Idempotency-Key` and counts the rest.

Tickets are opened through one API and acted on through the other and back, and each
step's workflow task and activities go to whichever worker polls first. Then, with a
batch in the middle of its lifecycle, the worker whose relay is delivering is killed
with SIGKILL: the other carries every ticket and the deliveries to their end. Each time,
every event is recorded once and every message delivered once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
    ResetStickyTaskQueueRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.database import Pool, with_search_path
from api.access import hash_key, new_key
from tests.activities.test_delivery import webhook
from tests.api.conftest import intake
from tests.conftest import schema_of_its_own
from tests.waiting import eventually
from tests.workers.conftest import Running, spawn_ticketflow, ticketflow_env
from workers.devstack import free_port
from workers.main import review_schedule_id, surge_schedule_id
from workers.receiver import Inbox
from workflows.relay import relay_lane, relay_workflow_id

SECRET = "two-of-all-secret-" + "t" * 16
ROLES = ("backend", "agent")
# Long enough for a worker process to start (imports, migrations, the classifier), and
# for tickets a dead worker held to move on: their workflow tasks leave its sticky queue
# after the sticky wait (workers.settings.STICKY_WAIT, 10 s), its activities after their
# start-to-close timeout (15 s for the store), the relay's after its 30 s heartbeat
# timeout.
START_WITHIN = 90.0
RECOVER_WITHIN = 120.0
# A ticket's life here, each step through the API after the one before it. With a
# delivery destination set, every message the ticket sends is delivered by a relay.
STEPS = ("open", "assign", "respond", "resolve", "csat", "solved")
# What each ticket records in PostgreSQL for those steps, in order, each once...
EVENTS = [
    "ticket_opened",
    "acknowledged",
    "assigned",
    "status_changed",
    "agent_replied",
    "first_responded",
    "milestone_recorded",
    "resolved",
    "status_changed",
    "csat_recorded",
    "customer_replied",
    "closed",
    "status_changed",
    "feedback_requested",
]
# ... and the messages it sends the customer, each delivered once.
DELIVERIES = [
    "acknowledgement",
    "agent_reply",
    "result",
    "confirmation_request",
    "satisfaction_survey",
]


# ---------------------------------------------------------------- the fleet


def identity_pid(identity: str) -> int | None:
    """The process id in the SDK's default worker identity, `<pid>@<host>`."""
    head = identity.partition("@")[0]
    return int(head) if head.isdigit() else None


@dataclass
class Fleet:
    client: Client
    task_queue: str
    pool: Pool
    inbox: Inbox
    env: dict[str, str]
    keys: dict[str, str]
    http: httpx.AsyncClient
    apis: list[str] = field(default_factory=list)
    processes: list[Running] = field(default_factory=list)
    workers: list[Running] = field(default_factory=list)

    def tails(self) -> str:
        return "\n".join(p.tail() for p in self.processes)

    async def start_worker(self) -> Running:
        worker = await spawn_ticketflow(f"worker {len(self.workers) + 1}", "worker", self.env)
        self.processes.append(worker)
        self.workers.append(worker)
        return worker

    async def start_api(self) -> str:
        port = free_port()
        env = {**self.env, "TICKETFLOW_API__PORT": str(port)}
        self.processes.append(await spawn_ticketflow(f"api {len(self.apis) + 1}", "api", env))
        url = f"http://127.0.0.1:{port}"
        self.apis.append(url)
        return url

    async def until_apis_answer(self) -> None:
        async def healthy() -> bool:
            for url in self.apis:
                try:
                    if (await self.http.get(f"{url}/healthz")).status_code != 200:
                        return False
                except httpx.TransportError:
                    return False
            return True

        assert await eventually(healthy, bool, within=START_WITHIN), self.tails()

    async def polling(self) -> set[int]:
        """The processes polling the queue for both workflow and activity tasks."""
        found: list[set[int]] = []
        for kind in (
            TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        ):
            described = await self.client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=self.client.namespace,
                    task_queue=TaskQueue(name=self.task_queue),
                    task_queue_type=kind,
                )
            )
            found.append({identity_pid(p.identity) or 0 for p in described.pollers})
        return found[0] & found[1]

    async def until_workers_poll(self) -> None:
        live = {w.pid for w in self.workers if w.alive}
        polling = await eventually(self.polling, lambda pids: live <= pids, within=START_WITHIN)
        assert live <= polling, self.tails()

    async def relay_runner(self) -> int | None:
        """The process whose relay is delivering now (the relay's pending activity)."""
        try:
            described = await self.client.get_workflow_handle(
                relay_workflow_id(self.task_queue)
            ).describe()
        except RPCError:
            return None
        for pending in described.raw_description.pending_activities:
            if pending.last_worker_identity and pending.last_started_time.seconds:
                return identity_pid(pending.last_worker_identity)
        return None

    async def served_by(self, ticket_id: str) -> set[int]:
        """The processes that ran the ticket's workflow tasks and activities."""
        history = await self.client.get_workflow_handle(ticket_id).fetch_history()
        pids: set[int] = set()
        for event in history.events:
            for started in (
                event.workflow_task_started_event_attributes,
                event.activity_task_started_event_attributes,
            ):
                pid = identity_pid(started.identity)
                if pid is not None:
                    pids.add(pid)
        return pids

    # ------------------------------------------------------------ through the APIs

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    async def send(self, api: int, path: str, role: str, body: Any = None, **headers: str) -> Any:
        """POST `body` (GET without one) through API `api`. A 503 (Temporal slower than
        the API waits, as while a killed worker's tasks time out) is sent again as it
        was, as a client does: the same action id, reply id or idempotency key, applied
        once."""
        url = self.apis[api % len(self.apis)] + path
        headers = {**self.auth(role), **headers}
        while True:
            if body is None:
                response = await self.http.get(url, headers=headers, timeout=60)
            else:
                response = await self.http.post(url, json=body, headers=headers, timeout=60)
            if response.status_code != 503:
                assert response.status_code < 300, (path, response.status_code, response.text)
                return response.json()
            await asyncio.sleep(0.2)

    async def step(self, api: int, ticket_id: str | None, name: str, twice: bool) -> str:
        """One step of the lifecycle through API `api` (`twice`: through both at once, as a
        client resending through a load balancer does); the ticket's id."""
        at = f"/v1/tickets/{ticket_id}"
        action = {"action_id": f"{name}-{uuid.uuid4()}"}
        headers: dict[str, str] = {}
        if name == "open":
            path, body, role = "/v1/tickets", intake(), "backend"
            headers["Idempotency-Key"] = f"two-of-all-{uuid.uuid4()}"
        elif name == "assign":
            path, body, role = f"{at}/assignment", {**action, "agent_id": "agent-7"}, "agent"
        elif name == "respond":
            path, role = f"{at}/responses", "agent"
            body = {**action, "message": "已收到, 正在为您查询续费方式"}
        elif name == "resolve":
            path, role = f"{at}/resolution", "agent"
            body = {
                **action,
                "result_kind": "suggestion",
                "message": "在“我的-会员”页点续费即可",
                "root_cause": "咨询-会员",
            }
        else:  # the customer's answers, on their channel
            path, role = f"{at}/customer-replies", "backend"
            body = {"reply_id": f"{name}-{uuid.uuid4()}", "kind": name}
            if name == "csat":
                body["score"] = 5
        sent = [self.send(api + n, path, role, body, **headers) for n in range(2 if twice else 1)]
        answers = await asyncio.gather(*sent)
        assert len({a["ticket_id"] for a in answers}) == 1, answers
        return str(answers[0]["ticket_id"])

    async def lifecycle(
        self,
        first_api: int,
        moving: bool = False,
        twice: bool = False,
        done: Callable[[], None] = lambda: None,
    ) -> str:
        """A ticket from intake to closed, each step through the other API than the one
        before it (`twice`: each through both at once); `moving`, each step's workflow
        task off the worker that ran the step before."""
        ticket_id: str | None = None
        for number, name in enumerate(STEPS):
            if moving and ticket_id is not None:
                await self.move_off_its_worker(ticket_id)
            ticket_id = await self.step(first_api + number, ticket_id, name, twice)
            done()
        assert ticket_id is not None
        return ticket_id

    async def move_off_its_worker(self, ticket_id: str) -> None:
        """The ticket's next workflow task to the shared queue, whichever worker takes it.
        The dev server sometimes answers "operation was canceled" while the ticket's
        workflow is busy (seen in CI since the intake settles a new ticket's priority):
        asked again, as test_versioning's make_current does."""
        request = ResetStickyTaskQueueRequest(
            namespace=self.client.namespace,
            execution=WorkflowExecution(workflow_id=ticket_id),
        )
        for attempt in range(50):
            try:
                await self.client.workflow_service.reset_sticky_task_queue(request)
                return
            except RPCError as error:
                if "operation was canceled" not in error.message or attempt == 49:
                    raise
            await asyncio.sleep(0.1)

    # ------------------------------------------------------------ what was recorded

    async def view(self, ticket_id: str) -> dict[str, Any]:
        view: dict[str, Any] = await self.send(0, f"/v1/tickets/{ticket_id}", "agent")
        return view

    async def events(self, ticket_id: str) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT type FROM ticket_events WHERE ticket_id = $1 ORDER BY seq", ticket_id
        )
        return [row["type"] for row in rows]

    async def nothing_lost_or_doubled(self, tickets: list[str], copies: int) -> None:
        """Every ticket closed with each of its events recorded once, and each of its
        messages delivered and received once under its `Idempotency-Key` (a copy sent
        again after a crash counts at the receiver, which keeps one: at most `copies`).
        """
        assert len(set(tickets)) == len(tickets)

        async def statuses() -> list[str]:
            return [view["status"] for view in await asyncio.gather(*map(self.view, tickets))]

        assert await eventually(statuses, lambda s: set(s) == {"closed"}, RECOVER_WITHIN) == [
            "closed"
        ] * len(tickets), self.tails()

        async def recorded() -> list[list[str]]:
            return list(await asyncio.gather(*map(self.events, tickets)))

        def complete_or_wrong(found: list[list[str]]) -> bool:
            return all(e == EVENTS or e != EVENTS[: len(e)] for e in found)

        events = await eventually(recorded, complete_or_wrong, RECOVER_WITHIN)
        assert events == [EVENTS] * len(tickets)
        # What each ticket decided is what is stored: nothing beyond these, either.
        views = await asyncio.gather(*map(self.view, tickets))
        assert [v["events_recorded"] for v in views] == [len(EVENTS)] * len(tickets)

        async def undelivered() -> int:
            count: int = await self.pool.fetchval(
                "SELECT count(*) FROM outbox WHERE ticket_id = ANY($1) AND dispatched_at IS NULL",
                tickets,
            )
            return count

        assert await eventually(undelivered, lambda n: n == 0, RECOVER_WITHIN) == 0, self.tails()
        rows = await self.pool.fetch(
            "SELECT ticket_id, dedupe_key, kind, rendered, failed_at FROM outbox"
            " WHERE ticket_id = ANY($1) ORDER BY id",
            tickets,
        )
        assert [r["failed_at"] for r in rows] == [None] * len(rows)
        for ticket_id in tickets:
            sent = [r["kind"] for r in rows if r["ticket_id"] == ticket_id]
            assert sent == [f"customer_message:{kind}" for kind in DELIVERIES], sent
        received = {key: r for key, r in self.inbox.received.items() if r.ticket_id in tickets}
        assert sorted(received) == sorted(r["dedupe_key"] for r in rows)
        for row in rows:
            arrived = received[row["dedupe_key"]]
            assert (arrived.kind, arrived.text) == (row["kind"], row["rendered"])
            assert 1 <= arrived.copies <= copies, (row["dedupe_key"], arrived.copies)


@pytest.fixture(scope="module")
async def fleet(
    dev_env: WorkflowEnvironment, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Fleet]:
    inbox = Inbox(secret=SECRET)
    task_queue = f"two-of-all-{uuid.uuid4()}"
    keys = {role: new_key() for role in ROLES}
    entries = [
        {"name": f"test-{role}", "role": role, "sha256": hash_key(keys[role])} for role in ROLES
    ]
    async with (
        webhook(inbox) as url,
        schema_of_its_own(database_url, "two_of_all") as pool,
        httpx.AsyncClient() as http,
    ):
        schema = await pool.fetchval("SELECT current_schema()")
        env = ticketflow_env(
            dev_env,
            with_search_path(database_url, schema),
            task_queue,
            tmp_path_factory.mktemp("two-of-all"),
            TICKETFLOW_DELIVERY__WEBHOOK_URL=url,
            TICKETFLOW_DELIVERY__SECRET=SECRET,
            TICKETFLOW_API__KEYS=json.dumps(entries),
        )
        fleet = Fleet(dev_env.client, task_queue, pool, inbox, env, keys, http)
        try:
            await asyncio.gather(
                fleet.start_worker(), fleet.start_worker(), fleet.start_api(), fleet.start_api()
            )
            await fleet.until_workers_poll()
            await fleet.until_apis_answer()
            yield fleet
        finally:
            await asyncio.gather(*(p.end() for p in fleet.processes))
            await _clean_up(dev_env.client, task_queue)


async def _clean_up(client: Client, task_queue: str) -> None:
    """The dev server outlives this module: leave nothing of ours running on it."""
    async for execution in client.list_workflows(
        f"(TaskQueue = '{task_queue}' OR TaskQueue = '{relay_lane(task_queue)}')"
        " AND ExecutionStatus = 'Running'"
    ):
        with contextlib.suppress(RPCError):
            await client.get_workflow_handle(execution.id).terminate("tests done")
    for schedule in (surge_schedule_id(task_queue), review_schedule_id(task_queue)):
        with contextlib.suppress(RPCError):
            await client.get_schedule_handle(schedule).delete()


# ---------------------------------------------------------------- the tests


async def test_a_lifecycle_completes_whichever_process_serves_each_step(fleet: Fleet) -> None:
    """Each step goes to whichever worker polls first: before every step the ticket's
    sticky queue is reset, as the server does when the worker that last ran it stops
    answering, so the step is rebuilt from history by either process. Half the tickets
    get every request through both APIs at once, under one id: applied once."""
    tickets = await asyncio.gather(
        *(fleet.lifecycle(n, moving=True, twice=n % 2 == 1) for n in range(6))
    )

    await fleet.nothing_lost_or_doubled(tickets, copies=1)
    served = await asyncio.gather(*(fleet.served_by(t) for t in tickets))
    both = {w.pid for w in fleet.workers}
    assert set().union(*served) == both, served
    assert any(pids == both for pids in served), served


async def test_kill_9_of_a_worker_mid_run_loses_and_doubles_nothing(fleet: Fleet) -> None:
    """A batch is halfway through its lifecycles when a worker is killed with SIGKILL:
    the one whose relay is delivering, so that both its tickets and the deliveries must
    go on in the other (the harder of the two kills: killing the other worker moves
    tickets only). The dead worker's workflow tasks, activities and relay round time out
    and the other worker carries them on; clients resend what was refused with 503 under
    the same ids, as the API asks them to."""
    relay = await eventually(fleet.relay_runner, lambda pid: pid is not None)
    killed = next((w for w in fleet.workers if w.pid == relay), None)
    assert killed is not None, f"the relay runs in {relay}\n{fleet.tails()}"
    survivor = next(w for w in fleet.workers if w is not killed)

    batch, halfway, steps = 20, asyncio.Event(), 0

    def one_step_done() -> None:
        nonlocal steps
        steps += 1
        if steps >= batch * len(STEPS) // 2:
            halfway.set()

    lifecycles = [asyncio.create_task(fleet.lifecycle(n, done=one_step_done)) for n in range(batch)]
    await asyncio.wait_for(halfway.wait(), timeout=RECOVER_WITHIN)
    await killed.kill_9()
    tickets = await asyncio.wait_for(asyncio.gather(*lifecycles), timeout=RECOVER_WITHIN)

    assert survivor.alive, survivor.tail()
    # Copies the dead relay had sent but not yet marked are sent again: the receiver
    # keeps one (at most two arrived).
    await fleet.nothing_lost_or_doubled(tickets, copies=2)
    assert await eventually(fleet.relay_runner, lambda pid: pid == survivor.pid) == survivor.pid
    # Tickets the dead worker was running were finished by the other.
    served = await asyncio.gather(*(fleet.served_by(t) for t in tickets))
    assert any(pids == {killed.pid, survivor.pid} for pids in served), served
