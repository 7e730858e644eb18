"""A fresh time-skipping Temporal server and a real worker per test.

The test server has one clock for all workflows, so one test's leftovers (an open ticket
whose timers fire onto a queue nobody polls, a held time-skipping lock) would stall the
next test's sleeps; at 0.1 s a start, a server per test is the simple cure. Activities are
the real ones, writing to the session's real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Interceptor

from activities.delivery import words_of
from activities.messages import MessageTemplates
from api.client import ActionRejected, OpenedTicket, TicketClient
from tests.codec_keys import CONVERTER
from tests.waiting import eventually
from workers.cluster import register_search_attributes
from workers.devspec import DevServerSpec
from workers.main import Workers, build_worker
from workflows.contracts import Intake, Resolve, TicketAction, TicketOutcome
from workflows.policy import ServicePolicy
from workflows.primitives import Actor, ContextSnapshot
from workflows.vocabulary import Channel, ResultKind, Role, Tier

# What the event store holds after intake → respond → resolve → "solved" → closed.
STANDARD_LIFECYCLE_EVENTS = [
    "ticket_opened",
    "agent_replied",
    "first_responded",
    "status_changed",
    "milestone_recorded",
    "resolved",
    "status_changed",
    "customer_replied",
    "closed",
    "status_changed",
    "feedback_requested",
]

AGENT = Actor(id="agent-7", role=Role.AGENT)
TECH = Actor(id="tech-oncall-2", role=Role.DEPARTMENT)


def resolve(root_cause: str = "產品缺陷-支付流程") -> Resolve:
    return Resolve(
        actor=AGENT,
        result_kind=ResultKind.TECHNICAL,
        message="The payment page works again; please retry your order.",
        root_cause=root_cause,
    )


@pytest.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=f"{sys.prefix}/bin/temporal-test-server",
        data_converter=CONVERTER,
    )
    # The test server knows no custom search attributes until told; without them every
    # upsert fails the workflow task.
    await register_search_attributes(env.client, env.client.namespace)
    yield env
    await env.shutdown()


@pytest.fixture(scope="module")
async def eager_can_env(
    dev_spec: DevServerSpec, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[WorkflowEnvironment]:
    """The dev server, told to suggest continue-as-new after 60 events instead of ~10k."""
    env = await WorkflowEnvironment.start_local(
        namespace=dev_spec.namespace,
        dev_server_existing_path=f"{sys.prefix}/bin/temporal",
        dev_server_database_filename=str(Path(tmp_path_factory.mktemp("can")) / "t.db"),
        dev_server_extra_args=[
            *dev_spec.behaviour_args(),
            "--dynamic-config-value",
            "limit.historyCount.suggestContinueAsNew=60",
        ],
        ui=False,
        data_converter=CONVERTER,
    )
    yield env
    await env.shutdown()


@dataclass
class Desk:
    """One test's view of the system: the client backends use, and the stores behind it."""

    env: WorkflowEnvironment
    tickets: TicketClient
    pool: asyncpg.Pool
    policy: ServicePolicy
    task_queue: str
    opened: list[str] = field(default_factory=list)

    @property
    def client(self) -> Client:
        return self.env.client

    async def open(
        self, subject: str, description: str | None = None, **fields: Any
    ) -> OpenedTicket:
        fields.setdefault("channel", Channel.APP_CHAT)
        fields.setdefault("tier", Tier.STANDARD)
        fields.setdefault("idempotency_key", f"key-{uuid.uuid4()}")
        fields.setdefault("customer_id", f"cust-{uuid.uuid4().hex[:8]}")
        intake = Intake(
            subject=subject,
            description=description or subject,
            context=ContextSnapshot(
                device_model="Pixel 8", os_version="Android 15", app_version="7.3.0"
            ),
            **fields,
        )
        ticket = await self.tickets.open(intake)
        self.opened.append(ticket.ticket_id)
        return ticket

    async def events(self, ticket_id: str) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            "SELECT seq, type, actor_id, data FROM ticket_events WHERE ticket_id = $1 ORDER BY seq",
            ticket_id,
        )

    async def event_types(self, ticket_id: str) -> list[str]:
        return [row["type"] for row in await self.events(ticket_id)]

    async def outbox(self, ticket_id: str) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            "SELECT kind, channel_or_recipient, payload FROM outbox WHERE ticket_id = $1 ORDER BY id",
            ticket_id,
        )

    async def said(self, ticket_id: str, kind: str) -> list[tuple[str | None, str]]:
        """The locale and words of each outbox row of `kind`, as the relay will say them
        (the shipped templates, this desk's policy)."""
        rows = await self.pool.fetch(
            "SELECT dedupe_key, kind, payload FROM outbox WHERE ticket_id = $1 AND kind = $2"
            " ORDER BY id",
            ticket_id,
            kind,
        )
        templates = MessageTemplates.load()
        return [
            words_of(r["dedupe_key"], r["kind"], r["payload"], templates, self.policy) for r in rows
        ]

    async def settled(self, ticket_id: str) -> None:
        """Wait until the workflow has stored every event it decided on.

        Effects run in the workflow's loop right after a handler or timer; this waits for
        that processing (bounded), never for ticket time, which the server skips.
        """

        async def stored_and_recorded() -> tuple[int, int]:
            view = await self.tickets.view(ticket_id)
            stored = await self.pool.fetchval(
                "SELECT count(*) FROM ticket_events WHERE ticket_id = $1", ticket_id
            )
            return int(stored), view.events_recorded

        stored, recorded = await eventually(stored_and_recorded, lambda n: n[0] == n[1], within=10)
        assert stored == recorded, f"{ticket_id}: {recorded - stored} events still pending"

    async def expect_rejection(self, ticket_id: str, action: TicketAction, match: str) -> None:
        """Assert the ticket refuses an action, with a reason that says `match`."""
        with pytest.raises(ActionRejected, match=match):
            await self.tickets.act(ticket_id, action)

    async def outcome(self, ticket_id: str) -> TicketOutcome:
        """The result of a closed ticket, once its feedback window has passed.

        (This client's `result()` does not skip time by itself: the skip is explicit.)
        """
        await self.env.sleep(self.policy.feedback_window + timedelta(seconds=1))
        return await self.tickets.handle(ticket_id).result()

    async def skip(self, duration: timedelta, ticket_id: str | None = None) -> None:
        await self.env.sleep(duration)
        if ticket_id is not None:
            await self.settled(ticket_id)


DeskFactory = Callable[..., Awaitable[Desk]]


@contextlib.asynccontextmanager
async def _desks(env: WorkflowEnvironment, pool: asyncpg.Pool) -> AsyncIterator[DeskFactory]:
    workers: list[Workers] = []
    runs: list[asyncio.Task[None]] = []
    desks: list[Desk] = []

    async def make(
        policy: ServicePolicy | None = None, interceptors: Sequence[Interceptor] = ()
    ) -> Desk:
        policy = policy or ServicePolicy()
        task_queue = f"tickets-{uuid.uuid4()}"
        worker = build_worker(env.client, task_queue, pool, policy, interceptors)
        workers.append(worker)
        runs.append(asyncio.create_task(worker.run()))
        tickets = TicketClient(env.client, task_queue=task_queue, policy=policy)
        desks.append(
            Desk(env=env, tickets=tickets, pool=pool, policy=policy, task_queue=task_queue)
        )
        return desks[-1]

    yield make
    # The dev server outlives the test: leave no ticket running on it.
    for desk in desks:
        for ticket_id in desk.opened:
            with contextlib.suppress(RPCError):
                await desk.tickets.handle(ticket_id).terminate("test finished")
    for worker in workers:
        await worker.shutdown()
    await asyncio.gather(*runs, return_exceptions=True)


@pytest.fixture
async def desk_factory(
    time_env: WorkflowEnvironment, pg_pool: asyncpg.Pool
) -> AsyncIterator[DeskFactory]:
    """Desks on the time-skipping server: for everything that waits on ticket time."""
    async with _desks(time_env, pg_pool) as make:
        yield make


@pytest.fixture
async def desk(desk_factory: DeskFactory) -> Desk:
    return await desk_factory()


@pytest.fixture
async def live_desk(dev_env: WorkflowEnvironment, pg_pool: asyncpg.Pool) -> AsyncIterator[Desk]:
    """A desk on the real dev server: for rejected updates, search attributes and replay.

    Rejections are tested here because the time-skipping server (1.40) never releases its
    time-skipping lock after an update whose validator refused it: later sleeps hang.
    """
    async with _desks(dev_env, pg_pool) as make:
        yield await make()
