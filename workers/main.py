"""The ticket worker: TicketWorkflow plus every activity, wired to one PostgreSQL pool.

`ticketflow worker` (an existing cluster) and `ticketflow dev` (the local stack) both end
here. Migrations run first, so a new worker never writes to an older schema.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import structlog
from temporalio.client import Client
from temporalio.worker import Interceptor, Worker

from activities import all_activities
from activities.database import Pool, create_pool, migrate
from workers.settings import Settings
from workflows.policy import ServicePolicy
from workflows.sandbox import workflow_runner
from workflows.ticket import TicketWorkflow

log = structlog.get_logger(__name__)

# Long enough for an in-flight PostgreSQL write to finish; activities are idempotent, so
# one cut off later is simply retried by the next worker.
GRACEFUL_SHUTDOWN = timedelta(seconds=20)


def build_worker(
    client: Client,
    task_queue: str,
    pool: Pool,
    policy: ServicePolicy,
    interceptors: Sequence[Interceptor] = (),
) -> Worker:
    """The one definition of a ticket worker, shared by the process, the tests and bench."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[TicketWorkflow],
        activities=all_activities(pool, policy),
        workflow_runner=workflow_runner(),
        interceptors=interceptors,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
    )


async def run_worker(
    settings: Settings,
    client: Client,
    database_url: str,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until `stop` is set (or forever), then drain and return."""
    stop = stop or asyncio.Event()
    pool = await create_pool(database_url)
    try:
        applied = await migrate(pool)
        worker = build_worker(client, settings.task_queue, pool, settings.policy)
        log.info(
            "worker started",
            task_queue=settings.task_queue,
            namespace=client.namespace,
            migrations_applied=applied,
            time_scale=settings.policy.time_scale,
        )
        async with worker:
            await stop.wait()
            log.info("worker draining", graceful_seconds=GRACEFUL_SHUTDOWN.total_seconds())
        log.info("worker stopped")
    finally:
        await pool.close()
