"""`--profile`: sample the worker process with py-spy while a throughput window runs.

The raw (collapsed stack) output is kept under the results directory, with a speedscope
view next to it; `summarize` turns it into the few lines a person reads first: where the
worker's time goes, by the share of samples that pass through each function.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path


def py_spy() -> str | None:
    local = Path(sys.prefix) / "bin" / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


async def record(pid: int, seconds: float, output: Path) -> asyncio.subprocess.Process | None:
    """Start sampling `pid` for `seconds`; await `.wait()` on the result to finish."""
    binary = py_spy()
    if binary is None:
        return None
    output.parent.mkdir(parents=True, exist_ok=True)
    return await asyncio.create_subprocess_exec(
        binary,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, int(seconds))),
        "--rate",
        "100",
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(output),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


@contextlib.asynccontextmanager
async def sampled(
    pid: int, seconds: float, output: Path, title: str, say: Callable[[str], None]
) -> AsyncIterator[list[str]]:
    """py-spy on `pid` for `seconds` from the block's start; when the block ends (however
    it ends) the recording is awaited and its summary printed and put in the yielded list.
    The list stays empty when py-spy is missing or wrote nothing, and the run goes on."""
    summary: list[str] = []
    recording = await record(pid, seconds, output)
    if recording is None:
        say("py-spy not found: pip install -e '.[bench]' to profile")
    try:
        yield summary
    finally:
        if recording is not None:
            await recording.wait()
            if await asyncio.to_thread(output.exists):
                summary.extend(summarize(output))
                say(f"worker profile ({title}): share of busy samples through each function")
                for line in summary:
                    print("    " + line)
            else:
                say(f"py-spy wrote no profile ({title}; exit {recording.returncode})")


# Frames every stack passes through (the event loop, the process's entry point) and
# stacks that are only waiting say nothing about where the work goes.
_GENERIC = (
    "asyncio/",
    "<frozen runpy>",
    "threading.py",
    "selectors.py",
    "concurrent/futures/",
    "bench/worker_process.py",
)
_IDLE_LEAVES = (
    "select (selectors.py",
    "_worker (concurrent/futures/thread.py",
    "wait (threading.py",
)


def _frame_name(frame: str) -> tuple[str, str]:
    # py-spy raw frames read "function (path/to/file.py:line)".
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            path = path.split("/", 1)[1] if marker.startswith("/lib") else path
    return name, path


def summarize(raw: Path, top: int = 15) -> list[str]:
    """Share of the busy samples (waiting stacks left out) that pass through each function,
    heaviest first, without the event loop's own frames."""
    inclusive: Counter[str] = Counter()
    total = busy = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        if frames[-1].startswith(_IDLE_LEAVES):
            continue
        busy += count
        names = set()
        for frame in frames:
            name, path = _frame_name(frame)
            if not any(generic in path for generic in _GENERIC):
                names.add(f"{name} ({path})")
        for name in names:
            inclusive[name] += count
    if busy == 0:
        return []
    lines = [f"busy in {100 * busy / total:.0f}% of {total} samples; of those:"]
    last = 0
    for name, count in inclusive.most_common():
        # A chain of callers with (nearly) one share is one line: its first frame.
        if last and count > 0.97 * last:
            continue
        lines.append(f"{100 * count / busy:5.1f}%  {name}")
        last = count
        if len(lines) > top:
            break
    return lines
