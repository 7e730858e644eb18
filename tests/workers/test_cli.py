"""`ticketflow` commands reach Temporal through envconfig and fail in one line."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from workers.cli import main

ROOT = Path(__file__).resolve().parents[2]
# `ticketflow` as its console script runs it, then how many threads are left the moment
# the command returned: the SDK core's threads, left to interpreter shutdown, are what
# aborted it.
AS_THE_CONSOLE_SCRIPT = (
    "import os, sys\n"
    "from workers.cli import main\n"
    "code = main(['register-search-attributes'])\n"
    # The dropped runtime's threads end a moment after: wait for that, within a bound.
    "import time\n"
    "deadline = time.monotonic() + 5\n"
    "while len(os.listdir('/proc/self/task')) > 1 and time.monotonic() < deadline:\n"
    "    time.sleep(0.01)\n"
    "print('threads left:', len(os.listdir('/proc/self/task')))\n"
    "sys.exit(code)\n"
)
# The abort came in about 1 run in 10 (2 in 20 in the report, 8 in 100 here); 20 runs
# of about a second each would miss it about once in 8.
RUNS = 20


@pytest.fixture(autouse=True)
def no_user_temporal_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "TEMPORAL_PROFILE",
        "TEMPORAL_API_KEY",
        "TEMPORAL_CONFIG_FILE",
        "TEMPORAL_NAMESPACE",
    ):
        monkeypatch.delenv(name, raising=False)


async def test_register_search_attributes_uses_the_temporal_environment(
    dev_env: WorkflowEnvironment,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    # main() runs its own event loop, as it does from the console script.
    status = await asyncio.to_thread(main, ["register-search-attributes"])
    assert status == 0
    assert "registered nothing, all present" in capsys.readouterr().out


async def test_register_search_attributes_exits_cleanly_every_time(
    dev_env: WorkflowEnvironment,
) -> None:
    """A deploy script with `set -e` runs it: it must end 0 every time, not abort with
    "Fatal Python error: PyGILState_Release ... finalizing" (exit 134) after its work."""
    env = {**os.environ, "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host}
    for run in range(RUNS):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            AS_THE_CONSOLE_SCRIPT,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output = (await process.communicate())[0].decode(errors="replace")
        assert process.returncode == 0, f"run {run + 1}: exit {process.returncode}\n{output}"
        assert "registered nothing, all present" in output
        # Nothing of the SDK is left to run into the interpreter's finalisation.
        assert "threads left: 1\n" in output, output


def test_unreachable_cluster_is_one_line_and_a_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
    assert main(["register-search-attributes"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("ticketflow register-search-attributes: ")
    assert error.count("\n") == 1


def test_bad_settings_are_one_line_and_a_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TICKETFLOW_POLICY__TIME_ZONE", "Nowhere/Land")
    assert main(["migrate"]) == 1
    assert "unknown time zone 'Nowhere/Land'" in capsys.readouterr().err


def test_api_without_a_database_is_one_line_and_a_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("DATABASE_URL", "TICKETFLOW_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")  # never reached
    assert main(["api"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("ticketflow api: the API reads the worker's PostgreSQL")
    assert error.count("\n") == 1


def test_a_bad_message_template_stops_the_worker_before_it_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    templates = tmp_path / "messages.toml"
    templates.write_text('[en]\nauto_reply = "Hello {{ customer_phone }}"\n', encoding="utf-8")
    monkeypatch.setenv("TICKETFLOW_TEMPLATES_FILE", str(templates))
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")  # never reached
    assert main(["worker"]) == 1
    error = capsys.readouterr().err
    assert "en.auto_reply: unknown parameter(s) customer_phone" in error
    assert error.count("\n") == 1


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("command", ["worker", "migrate"])
def test_outside_the_dev_stack_no_database_url_is_refused_not_embedded(
    command: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    for name in ("DATABASE_URL", "TICKETFLOW_DATABASE_URL", "TICKETFLOW_EMBEDDED_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TICKETFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")  # never reached
    assert main([command]) == 1
    error = capsys.readouterr().err
    assert "no DATABASE_URL" in error and "TICKETFLOW_EMBEDDED_DATABASE=true" in error
    assert error.count("\n") == 1
    assert not (tmp_path / "data").exists()  # no embedded PostgreSQL was started


async def test_tickets_before_says_whether_a_patch_may_go(
    dev_env: WorkflowEnvironment,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The operator's check before an upgrade that retires patch branches: exit 0 when no
    running ticket began before, 3 while some did, one line for an unknown build."""
    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.setenv("TICKETFLOW_TASK_QUEUE", f"quiet-{uuid.uuid4()}")
    since = ["tickets-before", "--since", "2026-01-01T00:00:00+08:00"]
    assert await asyncio.to_thread(main, since) == 0
    assert "may be retired" in capsys.readouterr().out
    unknown = ["tickets-before", "--build", "no-such-build", "--deployment", "nobody"]
    assert await asyncio.to_thread(main, unknown) == 1
    assert "has no build 'no-such-build'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:
        main(["tickets-before", "--since", "2026-01-01T00:00:00"])  # no offset
    assert refused.value.code == 2
