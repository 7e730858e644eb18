"""Workers run the ticket lane outside the SDK's sandbox by default
(Settings.workflow_sandbox), so what the sandbox would refuse at run time must be refused
before the code runs: ruff's banned-api over workflows/ (pyproject.toml). These feed ruff,
as `make test`'s lint runs it, a workflow module using each banned name, and the same
code outside workflows/."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUFF = [sys.executable, "-m", "ruff", "check", "--no-cache"]
BANNED: list[str] = sorted(
    tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["ruff"]["lint"][
        "flake8-tidy-imports"
    ]["banned-api"]
)


def _using(name: str) -> str:
    """A module that imports `name`'s top package and uses `name` itself."""
    top = name.partition(".")[0]
    return f"import {top}\n\nUSED = {name}\n" if "." in name else f"import {name}\n"


def _banned(source: str, path: str) -> list[str]:
    done = subprocess.run(
        [*RUFF, "--output-format", "concise", "--stdin-filename", path],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    # 0: clean, 1: findings; anything else (a config ruff cannot read) must not pass.
    assert done.returncode in (0, 1) and not done.stderr.strip(), done.stderr
    return [line for line in done.stdout.splitlines() if "TID251" in line]


def test_the_ban_list_is_there() -> None:
    assert {"datetime.datetime.now", "time", "random.random", "os", "threading"} <= set(BANNED)


@pytest.mark.parametrize("name", BANNED)
def test_workflow_code_using_a_banned_name_fails_the_lint(name: str) -> None:
    assert _banned(_using(name), "workflows/probe.py"), f"ruff let workflow code use {name}"


def test_the_same_code_is_allowed_outside_workflows() -> None:
    source = "".join(_using(name).replace("USED", f"USED_{n}") for n, name in enumerate(BANNED))
    assert _banned(source, "activities/probe.py") == []


def test_the_clock_is_refused_however_it_is_imported() -> None:
    source = "from datetime import datetime\n\n\ndef f() -> object:\n    return datetime.now()\n"
    assert _banned(source, "workflows/probe.py")


def test_a_seeded_generator_is_deterministic_and_allowed() -> None:
    seeded = (
        "import random\n\n\ndef f(seed: int) -> float:\n    return random.Random(seed).random()\n"
    )
    assert _banned(seeded, "workflows/probe.py") == []


def test_the_workflow_package_passes_the_lint() -> None:
    done = subprocess.run(
        [*RUFF, "--select", "TID251", "workflows"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
