"""The herd twin's workflow definition (see bench/herd_twin.py): only what runs sandboxed."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from bench.herd_twin import HERD_ROW, ROW_TIMEOUT, HerdTwinInput


@workflow.defn
class HerdTwinWorkflow:
    @workflow.run
    async def run(self, start: HerdTwinInput) -> None:
        await workflow.sleep(max(start.instant - workflow.now(), timedelta(0)))
        await workflow.execute_activity(
            HERD_ROW, workflow.info().workflow_id, start_to_close_timeout=ROW_TIMEOUT
        )
