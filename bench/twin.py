"""The engine's floor: a workflow with a ticket lifecycle's shape and none of its work.

`TwinWorkflow` (bench/twin_workflow.py) has the ticket's run loop (wake on an action,
run the queued activities one after the other, then wait for the next action with a
timer that the action cancels) and the same number of updates, signals, timers and
activities per step, all taken from a real ticket's history by `bench.lifecycle.calibrate`.
Its activities do nothing, its payloads are a few bytes, it keeps no state worth the
name and writes no search attributes: what is left is what Temporal and the Python SDK
cost for that shape. Like the ticket's contracts, its models live outside the workflow
module and are passed through the sandbox, so no run pays for building them again.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from activities.database import Pool
from bench.herd_twin import HerdTwinRows
from workers.settings import STICKY_CACHE, STICKY_WAIT

EFFECT = "twin_effect"
APPEND = "twin_append"
# Longer than any bench run: like a ticket's deadlines, the timer never fires here.
WAIT = timedelta(hours=1)
NOOP_TIMEOUT = timedelta(seconds=15)


class TwinStep(BaseModel):
    """What one step queues: effects run one by one (the ticket's customer messages and
    hand-offs), and whether it records events (stored by one append per drain, so the
    events of steps that arrive while effects run share an append, as the ticket's do)."""

    effects: int
    append: bool


class TwinPlan(BaseModel):
    """The intake's step, then one per action; the last action closes the run."""

    start: TwinStep
    after: list[TwinStep]

    def activities(self) -> list[int]:
        """Activities per step when each step runs alone (what calibration compares)."""
        return [step.effects + step.append for step in (self.start, *self.after)]


class TwinView(BaseModel):
    actions: int
    pending: int


@activity.defn(name=EFFECT)
async def twin_effect(step: int) -> None:
    return None


@activity.defn(name=APPEND)
async def twin_append(step: int) -> None:
    return None


def build_twin_worker(
    client: Client,
    task_queue: str,
    pool: Pool,
    sticky_cache: int = STICKY_CACHE,
    sticky_wait: timedelta = STICKY_WAIT,
) -> Worker:
    """Worker defaults, like the ticket worker's (which only adds pass-through modules).
    It also runs the herd's twin (bench/herd_twin.py)."""
    from bench.herd_twin_workflow import HerdTwinWorkflow
    from bench.twin_workflow import TwinWorkflow

    return Worker(
        client,
        task_queue=task_queue,
        workflows=[TwinWorkflow, HerdTwinWorkflow],
        activities=[twin_effect, twin_append, HerdTwinRows(pool).write],
        graceful_shutdown_timeout=timedelta(seconds=5),
        max_cached_workflows=sticky_cache,
        sticky_queue_schedule_to_start_timeout=sticky_wait,
    )
