"""`/healthz` (the process is up) and `/readyz` (Temporal, PostgreSQL and the schema
answer), for load balancers and orchestrators: no API key."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta

from fastapi import APIRouter, Response

from activities.database import pending_migrations
from api.deps import Services, Svc
from api.schemas import Health
from stores.policy_store import compare as compare_policy

READY_CHECK_TIMEOUT_S = 2.0

health = APIRouter(tags=["health"])


@health.get("/healthz")
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@health.get("/readyz", responses={503: {"model": Health, "description": "a dependency is down"}})
async def readyz(svc: Svc, response: Response) -> Health:
    """Temporal and PostgreSQL both answer, and the database has every migration (the
    API never migrates: a worker or `ticketflow migrate` does, before the API serves)."""
    checks = dict(
        zip(
            ("temporal", "postgres", "schema"),
            await asyncio.gather(
                _check(_temporal_ok(svc)),
                _check(svc.pool.fetchval("SELECT 1")),
                _schema(svc),
            ),
            strict=True,
        )
    )
    ready = all(result == "ok" for result in checks.values())
    if checks["schema"] == "ok":
        # Reported, not a reason to stop serving: a policy rollout passes through it.
        checks["policy"] = await _policy(svc)
    if not ready:
        response.status_code = 503
        response.headers["Retry-After"] = "5"
    return Health(status="ok" if ready else "unavailable", checks=checks)


async def _schema(svc: Services) -> str:
    try:
        async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
            missing = await pending_migrations(svc.pool)
    except Exception as error:
        return f"unavailable: {type(error).__name__}"
    if missing:
        return (
            f"migrations missing: {', '.join(missing)} (start a worker or run `ticketflow migrate`)"
        )
    return "ok"


async def _policy(svc: Services) -> str:
    try:
        async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
            return await compare_policy(svc.pool, svc.tickets.task_queue, svc.policy)
    except Exception as error:
        return f"unavailable: {type(error).__name__}"


async def _temporal_ok(svc: Services) -> None:
    await svc.tickets.temporal.service_client.check_health(
        timeout=timedelta(seconds=READY_CHECK_TIMEOUT_S)
    )


async def _check(awaitable: Awaitable[object]) -> str:
    try:
        async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
            await awaitable
    except Exception as error:
        return f"unavailable: {type(error).__name__}"
    return "ok"
