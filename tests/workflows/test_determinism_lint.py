"""Workers run tickets outside the SDK's sandbox by default (Settings.workflow_sandbox), so
what the sandbox would refuse at run time must be refused before the code runs: ruff's
banned-api over workflows/ (pyproject.toml). These feed ruff a workflow module that breaks
each rule, as `make test`'s lint would see it, and the same lines outside workflows/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.prefix) / "bin" / "ruff"

BROKEN = {
    "clock": "from datetime import datetime\n\n\ndef f() -> object:\n    return datetime.now()\n",
    "sleep": "import time\n\n\ndef f() -> None:\n    time.sleep(1)\n",
    "randomness": "import random\n\n\ndef f() -> float:\n    return random.random()\n",
    "ids": "import uuid\n\n\ndef f() -> object:\n    return uuid.uuid4()\n",
    "environment": "import os\n\n\ndef f() -> object:\n    return os.environ.get('X')\n",
    "network": "import httpx\n\n\ndef f() -> object:\n    return httpx.get('http://x')\n",
    "thread": "import threading\n\n\ndef f() -> object:\n    return threading.Thread()\n",
    "service logger": "import structlog\n\nlog = structlog.get_logger()\n",
    "layering": "from activities import store\n\n__all__ = ['store']\n",
}


def _banned(source: str, path: str) -> list[str]:
    done = subprocess.run(
        [str(RUFF), "check", "--no-cache", "--output-format", "concise", "--stdin-filename", path],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    return [line for line in done.stdout.splitlines() if "TID251" in line]


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_workflow_code_that_breaks_determinism_fails_the_lint(rule: str) -> None:
    assert _banned(BROKEN[rule], "workflows/probe.py"), f"ruff let workflow code use a {rule}"


def test_the_same_code_is_allowed_outside_workflows() -> None:
    for source in BROKEN.values():
        assert _banned(source, "activities/probe.py") == []


def test_a_seeded_generator_is_deterministic_and_allowed() -> None:
    seeded = (
        "import random\n\n\ndef f(seed: int) -> float:\n    return random.Random(seed).random()\n"
    )
    assert _banned(seeded, "workflows/probe.py") == []


def test_the_workflow_package_passes_the_lint() -> None:
    done = subprocess.run(
        [str(RUFF), "check", "--no-cache", "--select", "TID251", "workflows"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout
