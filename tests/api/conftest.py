"""The HTTP API on the real stack: the real dev server, a real worker, real PostgreSQL.

One worker and one application serve the whole module set (the API is stateless; each
test opens its own tickets under fresh idempotency keys). Requests go through httpx's
ASGI transport: real HTTP handling, in process. Rejected updates are tested here too,
which is why this is the dev server and not the time-skipping one (see
tests/workflows/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from structlog.testing import capture_logs
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.database import Pool
from api.access import hash_key, new_key
from api.app import create_app
from api.deps import Services
from api.server import build_services, serve
from api.settings import ApiConfig, ApiKeyEntry, ApiSettings
from tests.waiting import eventually
from workers.devstack import free_port
from workers.main import build_worker
from workflows.policy import ServicePolicy

BASE_URL = "http://ticketflow.test"
ROLES = (
    "backend",
    "agent",
    "operator",
    "manager",
    "knowledge",
    "department:tech",
    "department:finance",
    "partner:sf-express",
    "partner:dhl",
)
PARTNER_SECRETS = {"sf-express": "sf-secret-" + "x" * 24, "dhl": "dhl-secret-" + "y" * 24}


@dataclass
class Stack:
    env: WorkflowEnvironment
    settings: ApiConfig
    services: Services
    app: FastAPI
    http: httpx.AsyncClient
    keys: dict[str, str]  # role -> key
    pool: Pool

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    async def open(self, role: str = "backend", **fields: Any) -> dict[str, Any]:
        """Open a ticket through the API; returns the 201 answer."""
        response = await self.http.post(
            "/v1/tickets",
            json=intake(**fields),
            headers={**self.auth(role), "Idempotency-Key": f"test-{uuid.uuid4()}"},
        )
        assert response.status_code == 201, response.text
        answer: dict[str, Any] = response.json()
        return answer

    async def act(
        self, ticket_id: str, route: str, body: Any, role: str = "agent"
    ) -> httpx.Response:
        return await self.http.post(
            f"/v1/tickets/{ticket_id}/{route}", json=body, headers=self.auth(role)
        )

    async def stored_events(self, ticket_id: str) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT type FROM ticket_events WHERE ticket_id = $1 ORDER BY seq", ticket_id
        )
        return [row["type"] for row in rows]

    async def settled(self, ticket_id: str) -> None:
        """Until every event the ticket decided on is in the event store."""
        caught_up = await eventually(lambda: self._settled(ticket_id), lambda done: done)
        assert caught_up, f"{ticket_id}: the event store never caught up with the ticket"

    async def _settled(self, ticket_id: str) -> bool:
        view = await self.services.tickets.view(ticket_id)
        stored = await self.pool.fetchval(
            "SELECT count(*) FROM ticket_events WHERE ticket_id = $1", ticket_id
        )
        return bool(stored == view.events_recorded)


def intake(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "email",
        "customer_id": f"cust-{uuid.uuid4().hex[:8]}",
        "tier": "standard",
        "subject": "会员怎么续费",
        "description": "请问会员到期后怎么续费?",
        "context": {"device_model": "Pixel 8", "os_version": "Android 15", "app_version": "7.3.0"},
    }
    body.update(fields)
    return body


def unknown_ticket() -> str:
    return "ticket-" + uuid.uuid4().hex[:24]


def api_settings(keys: dict[str, str], **overrides: Any) -> ApiSettings:
    entries = [
        ApiKeyEntry(name=f"test-{role.replace(':', '-')}", role=role, sha256=hash_key(key))
        for role, key in keys.items()
    ]
    return ApiSettings(keys=entries, partner_secrets=PARTNER_SECRETS, **overrides)


@pytest.fixture(scope="session")
async def stack(dev_env: WorkflowEnvironment, pg_pool: Pool) -> AsyncIterator[Stack]:
    task_queue = f"api-{uuid.uuid4()}"
    policy = ServicePolicy()
    worker = build_worker(dev_env.client, task_queue, pg_pool, policy)
    running = asyncio.create_task(worker.run())
    keys = {role: new_key() for role in ROLES}
    settings = ApiConfig(task_queue=task_queue, policy=policy, api=api_settings(keys))
    services = await build_services(settings, dev_env.client, pg_pool)
    app = create_app(services)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            yield Stack(dev_env, settings, services, app, http, keys, pg_pool)
    finally:
        await app.state.desk.close()
        # The dev server outlives these tests: leave no ticket of ours running on it.
        async for execution in dev_env.client.list_workflows(
            f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"
        ):
            with contextlib.suppress(RPCError):
                await dev_env.client.get_workflow_handle(execution.id).terminate("tests done")
        await worker.shutdown()
        await running


@pytest.fixture
async def served(stack: Stack, database_url: str) -> AsyncIterator[str]:
    """The API served by uvicorn on a free port, as `ticketflow api` and `make dev` serve
    it: for the CLI and for pages in a real browser."""
    port = free_port()
    config = stack.settings.model_copy(
        update={"api": stack.settings.api.model_copy(update={"port": port})}
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve(config, stack.env.client, stop, database_url))
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as probe:
        for _ in range(100):
            try:
                if (await probe.get(f"{url}/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    # The server's log lines would land in the same captured stdout as the CLI's output.
    with capture_logs():
        yield url
    stop.set()
    await asyncio.wait_for(task, 15)
