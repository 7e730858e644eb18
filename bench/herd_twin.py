"""The herd's twin: the engine's own floor for many workflows waking at one instant.

`HerdTwinWorkflow` (bench/herd_twin_workflow.py) sleeps until the instant, then writes
one row to PostgreSQL through an activity: a bare timer and a bare activity, what a
ticket's 10:00 check costs Temporal and the Python SDK with none of the ticket's work.
The herd bench (bench/herd.py) runs it beside the tickets, on the same server, worker
process and database, and judges the tickets against it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from temporalio import activity

from activities.database import Pool

HERD_ROW = "herd_twin_row"
ROW_TIMEOUT = timedelta(minutes=5)
TABLE = """
CREATE TABLE IF NOT EXISTS bench_herd_twin (
    workflow_id text PRIMARY KEY,
    recorded_at timestamptz NOT NULL DEFAULT now()
)
"""


class HerdTwinInput(BaseModel):
    instant: datetime


class HerdTwinRows:
    """The twin's one activity: a row, as a ticket's append writes its reminder."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    @activity.defn(name=HERD_ROW)
    async def write(self, workflow_id: str) -> None:
        await self._pool.execute(
            "INSERT INTO bench_herd_twin (workflow_id) VALUES ($1) ON CONFLICT DO NOTHING",
            workflow_id,
        )
