"""A workflow that logs through structlog, for the replay test of workers/logging.py.

Kept in its own module: the sandbox re-imports a workflow's module, and this one needs
nothing but temporalio and a passed-through structlog (as real workflow modules do).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import structlog

LOGGER = "tests.chatty"


@workflow.defn
class ChattyWorkflow:
    @workflow.run
    async def run(self) -> None:
        log = structlog.get_logger(LOGGER)
        log.info("step", n=1)
        # A timer ends the first workflow task, so a replay has history to go through.
        await workflow.sleep(timedelta(seconds=1))
        log.info("step", n=2)
