"""The twin's workflow definition (see bench/twin.py): only what must run in the sandbox."""

from __future__ import annotations

import contextlib

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from bench.twin import APPEND, EFFECT, NOOP_TIMEOUT, WAIT, TwinPlan, TwinStep, TwinView


@workflow.defn
class TwinWorkflow:
    @workflow.init
    def __init__(self, plan: TwinPlan) -> None:
        self._plan = plan
        self._effects = 0
        self._append = False
        self._actions = 0
        self._woken = False
        self._closed = False
        self._queue(plan.start)

    @workflow.run
    async def run(self, plan: TwinPlan) -> int:
        while True:
            self._woken = False
            # The ticket's _carry_out_effects: effects one by one, then one append for
            # every event recorded so far; again if handlers queued more meanwhile.
            while self._effects or self._append:
                while self._effects:
                    await workflow.execute_activity(
                        EFFECT, self._actions, start_to_close_timeout=NOOP_TIMEOUT
                    )
                    self._effects -= 1
                if self._append:
                    self._append = False
                    await workflow.execute_activity(
                        APPEND, self._actions, start_to_close_timeout=NOOP_TIMEOUT
                    )
            if self._closed:
                break
            if not self._woken:
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(lambda: self._woken, timeout=WAIT)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._actions

    @workflow.update
    def act(self, name: str) -> TwinView:
        self._take(name)
        return TwinView(actions=self._actions, pending=self._effects)

    @workflow.signal
    def notify(self, name: str) -> None:
        self._take(name)

    def _take(self, name: str) -> None:
        after = self._plan.after
        if self._closed or self._actions >= len(after):
            return
        self._queue(after[self._actions])
        self._actions += 1
        self._closed = self._actions == len(after)
        self._woken = True

    def _queue(self, step: TwinStep) -> None:
        self._effects += step.effects
        self._append = self._append or step.append
