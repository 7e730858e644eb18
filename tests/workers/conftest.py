"""Logging hygiene for the runtime-wiring tests, a client on a runtime of the test's
own, and `ticketflow` processes started as an operator starts them; the Temporal servers
are in tests/conftest.py."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import structlog
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import DEFAULT_MODELS
from tests.codec_keys import CONVERTER
from tests.workers.chatty_workflow import ChattyWorkflow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """`configure_logging` (called by the CLI too) changes process-wide state: put it back,
    or a handler bound to one test's captured stdout would outlive that test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    on_message = (
        workflow.logger.workflow_info_on_message,
        activity.logger.activity_info_on_message,
    )
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
    workflow.logger.workflow_info_on_message, activity.logger.activity_info_on_message = on_message


async def run_chatty(env: WorkflowEnvironment, runtime: Runtime, queue: str) -> None:
    """ChattyWorkflow run once on the dev server by a client on `runtime`."""
    client = await Client.connect(
        env.client.service_client.config.target_host,
        namespace=env.client.namespace,
        data_converter=CONVERTER,
        runtime=runtime,
    )
    async with Worker(client, task_queue=queue, workflows=[ChattyWorkflow]):
        await client.execute_workflow(ChattyWorkflow.run, id=queue, task_queue=queue)


# ---------------------------------------------------------------- ticketflow processes


def ticketflow_env(
    env: WorkflowEnvironment,
    database_url: str,
    task_queue: str,
    data_dir: Path,
    **settings: str,
) -> dict[str, str]:
    """The environment of a `ticketflow` process a test starts: the session's dev server
    and none of the user's own Temporal configuration, the test's database and queue, a
    data directory whose models are the suite's trained classifier (no training at
    start), and `settings` (`TICKETFLOW_*`) on top."""
    models = data_dir / "models"
    if not models.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        models.symlink_to((ROOT / DEFAULT_MODELS).resolve())
    configured = {
        **os.environ,
        "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": env.client.namespace,
        "DATABASE_URL": database_url,
        "TICKETFLOW_TASK_QUEUE": task_queue,
        "TICKETFLOW_DATA_DIR": str(data_dir),
        **settings,
    }
    for name in ("TEMPORAL_PROFILE", "TEMPORAL_API_KEY", "TEMPORAL_CONFIG_FILE"):
        configured.pop(name, None)
    return configured


@dataclass
class Running:
    """A `ticketflow` process of a test's, its output kept for failure messages."""

    name: str
    process: asyncio.subprocess.Process
    output: list[str] = field(default_factory=list)
    reading: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def tail(self, lines: int = 30) -> str:
        return f"--- {self.name} (pid {self.pid}) ---\n" + "".join(self.output[-lines:])

    async def kill_9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def end(self, within: float = 60) -> None:
        """SIGTERM, as an operator stops it; SIGKILL if it is still there `within` s on."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout=within)
            except TimeoutError:
                await self.kill_9()
        if self.reading is not None:
            await self.reading


async def spawn_ticketflow(name: str, command: str, env: dict[str, str]) -> Running:
    """`ticketflow <command>` (worker, api, ...) in a process of its own."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers.cli",
        command,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    running = Running(name, process)

    async def read() -> None:  # a full pipe would block the process's logging
        assert process.stdout is not None
        async for line in process.stdout:
            running.output.append(line.decode(errors="replace"))

    running.reading = asyncio.create_task(read())
    return running
