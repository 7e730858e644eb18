"""`python -m bench`'s options: which parts run, and how the worker processes are set."""

from __future__ import annotations

import argparse
from pathlib import Path

from workers.settings import STICKY_CACHE, STICKY_WAIT, WORKFLOW_SANDBOX, WORKFLOW_TASK_SLOTS

DESCRIPTION = "`python -m bench`: one run, every figure of docs/benchmarks.md, a table at the end."


def _positive_seconds(text: str) -> float:
    seconds = float(text)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return seconds


PARTS = ("floor", "history", "rest", "store", "delivery", "knowledge", "workspace")
# Parts that run alone, on request: the herd of 10,000 takes half an hour here, and the
# HTTP load about eight minutes.
ALONE = ("herd", "http", "relay-crash")


def _parts(text: str) -> tuple[str, ...]:
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(set(chosen) - {*PARTS, *ALONE})
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"parts are {', '.join(PARTS + ALONE)}; got {text!r}")
    alone = set(chosen) & set(ALONE)
    if alone and len(chosen) > 1:
        raise argparse.ArgumentTypeError(f"{', '.join(sorted(alone))} runs alone")
    return chosen


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a whole number, at least 1; got {text!r}")
    return int(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="small smoke run (< 60 s)")
    parser.add_argument(
        "--open-tickets", type=int, default=None, help="tickets at rest (default 10000)"
    )
    parser.add_argument(
        "--events", type=int, default=None, help="events in the store for the reads (1000000)"
    )
    parser.add_argument(
        "--workspace-rows",
        type=int,
        default=None,
        help="tickets in the workspace queue's read model (default 100000)",
    )
    parser.add_argument(
        "--herd",
        type=int,
        default=None,
        help="tickets in the herd part, and as many twins (default 10000; --quick 200)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the worker at the high concurrency (with --parts herd: through each wave;"
        " with --parts http: through the middle level's intakes)",
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=500,
        help="tickets opened and not yet at rest, at most (default 500)",
    )
    parser.add_argument(
        "--worker-log-level", default="INFO", help="the worker's log level (as ticketflow worker)"
    )
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="run the worker without a bytecode cache (as an editable install under "
        "PYTHONDONTWRITEBYTECODE=1 does)",
    )
    parser.add_argument(
        "--sticky-cache",
        type=int,
        default=STICKY_CACHE,
        help=f"the workers' max_cached_workflows (default {STICKY_CACHE}, as ticketflow worker)",
    )
    parser.add_argument(
        "--workflow-task-slots",
        type=int,
        default=WORKFLOW_TASK_SLOTS,
        help=f"the ticket lane's max_concurrent_workflow_tasks (default {WORKFLOW_TASK_SLOTS}, "
        "as ticketflow worker)",
    )
    parser.add_argument(
        "--sandbox",
        action=argparse.BooleanOptionalAction,
        default=WORKFLOW_SANDBOX,
        help="run the ticket lane in the workflow sandbox (default "
        f"{'on' if WORKFLOW_SANDBOX else 'off'}, as `ticketflow worker` without "
        "TICKETFLOW_WORKFLOW_SANDBOX)",
    )
    parser.add_argument(
        "--sticky-wait",
        type=_positive_seconds,
        default=STICKY_WAIT.total_seconds(),
        help="seconds a workflow task may wait on a worker's sticky queue (default"
        f" {STICKY_WAIT.total_seconds():.0f}, as ticketflow worker)",
    )
    parser.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="worker processes for parts 1, 2 and 10, on the same task queues (default 1; "
        "--profile samples the first)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument(
        "--markdown", type=Path, default=None, help="write the table as Markdown here"
    )
    parser.add_argument(
        "--parts",
        type=_parts,
        default=PARTS,
        help=f"comma-separated subset of {','.join(PARTS)} (default all; floor is parts 1 and 2)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser.parse_args(argv)
