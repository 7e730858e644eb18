"""OutboxRelayWorkflow: every message and hand-off a ticket decided on, delivered.

Tickets write their messages and hand-offs to the `outbox` table in the transaction of
the events that describe them; this workflow keeps one activity, `deliver_due`, running
over that table for as long as the worker lives. The activity delivers each due row to
its destination (a signed webhook or SMTP), backs off a failing one per the policy, and
after the policy's budget reports it to its owner (`delivery_failed`: a ticket, a review
or a surge investigation), which tells a person. Deliveries never run inside a ticket's
workflow, so a slow department system holds back no deadline and costs a ticket no
history.

The relay has a task queue of its own (`relay_lane`): at 10:00, when thousands of tickets
wake together, their tasks fill the tickets' queue for minutes, and a relay behind them
would deliver nothing else meanwhile, customers' messages included. It runs `relays`
activities at once, one per worker process that picks one up: they share the outbox
through leases.

Temporal keeps the relay alive: a crashed worker's activity times out on its heartbeat
and runs again on another; a row leased to it is delivered again after the lease, and
its `Idempotency-Key` lets the receiver drop the copy.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows import activity_stubs as activity
    from workflows.primitives import Contract


class RelayInput(Contract):
    # Delivery activities running at once; the worker's setting `delivery.relays`, sent
    # at each worker start (`resize`) and carried over continue-as-new.
    relays: int = 1
    rounds: int = 0
    delivered: int = 0
    failed: int = 0


# One round delivers for this long, heartbeating, then returns so the history shows the
# relay's progress; a new round starts at once.
ROUND = timedelta(minutes=5)
_HEARTBEAT = timedelta(seconds=30)
# Rounds per run before continuing as new: 4 history events a round.
_ROUNDS_PER_RUN = 500
_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


def relay_workflow_id(task_queue: str) -> str:
    return f"outbox-relay-{task_queue}"


def relay_lane(task_queue: str) -> str:
    """The relay's own task queue, beside the tickets' `task_queue`."""
    return f"{task_queue}-relay"


@workflow.defn
class OutboxRelayWorkflow:
    @workflow.init
    def __init__(self, start: RelayInput) -> None:
        self._relays = start.relays

    @workflow.signal
    def resize(self, relays: int) -> None:
        """From the next round on, run this many delivery activities at once."""
        self._relays = max(1, relays)

    @workflow.run
    async def run(self, start: RelayInput) -> None:
        totals = start.model_copy()
        while totals.rounds - start.rounds < _ROUNDS_PER_RUN:
            totals.relays = self._relays
            passes = await asyncio.gather(
                *(
                    workflow.execute_activity(
                        activity.deliver_due,
                        start_to_close_timeout=ROUND + timedelta(minutes=1),
                        heartbeat_timeout=_HEARTBEAT,
                        retry_policy=_RETRY,
                        summary="deliver due outbox rows",
                    )
                    for _ in range(totals.relays)
                )
            )
            totals.rounds += 1
            totals.delivered += sum(done.delivered for done in passes)
            totals.failed += sum(done.failed for done in passes)
            workflow.set_current_details(
                f"rounds {totals.rounds} · delivered {totals.delivered} · failed {totals.failed}"
            )
            if workflow.info().is_continue_as_new_suggested():
                break
        await workflow.wait_condition(workflow.all_handlers_finished)
        totals.relays = self._relays
        workflow.continue_as_new(totals)
