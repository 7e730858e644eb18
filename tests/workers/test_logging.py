"""workers/logging.py: one JSON line per event, stdlib included, none during replay."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

import pytest
import structlog
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from tests.codec_keys import CONVERTER
from tests.conftest import TEMPORAL_TEST_SERVER
from tests.workers.chatty_workflow import LOGGER, ChattyWorkflow
from tests.workers.conftest import run_chatty
from workers.logging import configure_logging
from workers.temporal_client import CORE_LOGGER, process_runtime


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_structlog_and_stdlib_share_one_json_format(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    structlog.contextvars.bind_contextvars(ticket_id="T-42")
    try:
        structlog.get_logger("tests.ours").info("opened", channel="email")
        logging.getLogger("temporalio.worker").warning("from %s", "stdlib")
        structlog.get_logger("tests.ours").debug("below the level")
    finally:
        structlog.contextvars.clear_contextvars()

    ours, theirs = json_lines(capsys.readouterr().out)
    assert ours["event"] == "opened"
    assert ours["channel"] == "email"
    assert theirs["event"] == "from stdlib"
    for line in (ours, theirs):
        assert line["ticket_id"] == "T-42"
        assert {"timestamp", "level", "logger"} <= set(line)


async def test_workflow_lines_are_written_once_never_on_replay(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO")
    async with (
        await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=TEMPORAL_TEST_SERVER,
            data_converter=CONVERTER,
        ) as env,
        Worker(env.client, task_queue="chatty", workflows=[ChattyWorkflow]),
    ):
        handle = await env.client.start_workflow(
            ChattyWorkflow.run, id=f"chatty-{uuid.uuid4()}", task_queue="chatty"
        )
        await handle.result()
        history = await handle.fetch_history()

    live = [
        line["n"] for line in json_lines(capsys.readouterr().out) if line.get("logger") == LOGGER
    ]
    assert live == [1, 2]

    await Replayer(workflows=[ChattyWorkflow], data_converter=CONVERTER).replay_workflow(history)
    replayed = [
        line for line in json_lines(capsys.readouterr().out) if line.get("logger") == LOGGER
    ]
    assert replayed == []


async def test_sdk_core_lines_join_the_json_log(
    capsys: pytest.CaptureFixture[str], dev_env: WorkflowEnvironment
) -> None:
    """The SDK core (Rust) logs through the process runtime into the same JSON lines, with
    its fields as fields: no coloured plain text in between."""
    configure_logging("DEBUG")
    await run_chatty(dev_env, process_runtime("DEBUG", None), f"chatty-{uuid.uuid4()}")

    seen = ""
    deadline = time.monotonic() + 10
    while CORE_LOGGER not in seen and time.monotonic() < deadline:
        captured = capsys.readouterr()
        seen += captured.out + captured.err
        await asyncio.sleep(0.05)  # the runtime forwards its lines in small batches
    assert "\x1b[" not in seen
    lines = [json.loads(line) for line in seen.splitlines() if line.strip()]  # all JSON
    core = [line for line in lines if line["logger"].startswith(CORE_LOGGER)]
    assert core
    assert {"timestamp", "level", "event"} <= set(core[0])
