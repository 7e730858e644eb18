"""`python -m bench`'s options: worker processes for parts 1 and 2, and the worker's settings."""

from __future__ import annotations

import pytest

from bench.options import parse_args
from workers.settings import WORKFLOW_SANDBOX, Settings


def test_the_floor_runs_against_one_worker_process_unless_told() -> None:
    assert parse_args([]).workers == 1
    assert parse_args(["--quick", "--parts", "floor", "--workers", "2"]).workers == 2


@pytest.mark.parametrize("text", ["0", "-1", "two"])
def test_workers_below_one_or_not_a_number_are_refused(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--workers", text])
    assert f"--workers: a whole number, at least 1; got '{text}'" in capsys.readouterr().err


def test_the_bench_runs_tickets_as_the_worker_does_unless_told() -> None:
    assert (
        parse_args([]).sandbox
        is WORKFLOW_SANDBOX
        is Settings.model_fields["workflow_sandbox"].default
    )
    assert parse_args(["--sandbox"]).sandbox is True
    assert parse_args(["--no-sandbox"]).sandbox is False
    assert parse_args([]).sticky_cache == Settings.model_fields["sticky_cache"].default
