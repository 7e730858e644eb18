"""`make dev`'s servers never outlive it, however it ends.

The Temporal dev server and PostgreSQL run in sessions of their own, so that a terminal's
Ctrl-C reaches only the stack, which then drains the worker before stopping them. The
price: a `kill -9` of the stack (or of `make`'s whole process group) would leave them
running, holding their ports against the next `make dev`.

Two guards, both by process id and start time (a recycled pid is never signalled):
- **The reaper.** A small process in a session of its own, holding the read end of a
  pipe from the stack. The stack tells it each server it starts. When the stack dies, the
  kernel closes the pipe; the reaper reads end-of-file and stops every server it was told
  about (SIGTERM to Temporal, SIGINT, PostgreSQL's fast shutdown), then SIGKILL after a
  grace period. A stack that stops normally says `done` first.
- **The pid file.** `<data_dir>/dev-servers.json` lists the same servers and the stack
  that owns them. If a reaper itself was killed, the next `make dev` stops what the dead
  stack left before it starts; a stack still running keeps its servers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

PID_FILE = "dev-servers.json"
GRACE_S = 10.0


@dataclass(frozen=True)
class Child:
    pid: int
    started: str  # /proc/<pid>/stat field 22: the pid's start time, in clock ticks
    stop_signal: int
    what: str


def start_time(pid: int) -> str | None:
    """The start time of a running process, None if there is none (or only a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]


def alive(child: Child) -> bool:
    return start_time(child.pid) == child.started


def child(pid: int, stop_signal: signal.Signals, what: str) -> Child | None:
    started = start_time(pid)
    return None if started is None else Child(pid, started, int(stop_signal), what)


def stop_all(children: list[Child], grace: float = GRACE_S) -> list[str]:
    """Signal each live child, wait for them to exit, SIGKILL the stubborn; what was stopped."""
    stopped = []
    for found in children:
        if alive(found):
            os.kill(found.pid, found.stop_signal)
            stopped.append(found.what)
    deadline = time.monotonic() + grace
    while any(alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    for found in children:
        if alive(found):
            os.kill(found.pid, signal.SIGKILL)
    return stopped


# ---------------------------------------------------------------- the pid file


def record(data_dir: Path, children: list[Child], owner: Child | None = None) -> None:
    """The servers, and the stack that owns them (this process unless told)."""
    owner = owner or child(os.getpid(), signal.SIGTERM, "stack")
    path = data_dir / PID_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(
        json.dumps(
            {"owner": asdict(owner) if owner else None, "servers": [asdict(c) for c in children]}
        )
    )
    temporary.replace(path)


def clean_leftovers(data_dir: Path) -> list[str]:
    """Stop the servers a dead stack left running; what was stopped. A stack still alive
    keeps its servers: the new one will then find the ports taken and say so."""
    path = data_dir / PID_FILE
    try:
        stored = json.loads(path.read_text())
        owner = Child(**stored["owner"]) if stored.get("owner") else None
        listed = [Child(**item) for item in stored["servers"]]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []
    if owner is not None and alive(owner):
        return []
    stopped = stop_all(listed)
    path.unlink(missing_ok=True)
    return stopped


# ---------------------------------------------------------------- the reaper


class Reaper:
    """The stack's side: start the reaper, tell it about each server."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._children: list[Child] = []
        self._process = subprocess.Popen(
            [sys.executable, "-m", "workers.reaper"],
            stdin=subprocess.PIPE,
            start_new_session=True,  # a kill of the stack's process group spares it
            text=True,
        )

    def watch(self, pid: int, stop_signal: signal.Signals, what: str) -> None:
        found = child(pid, stop_signal, what)
        if found is None or self._process.stdin is None:
            return
        self._children.append(found)
        record(self._data_dir, self._children)
        self._process.stdin.write(json.dumps(asdict(found)) + "\n")
        self._process.stdin.flush()

    def done(self) -> None:
        """Every server was stopped by the stack itself: nothing for the reaper to do."""
        if self._process.stdin is not None:
            try:
                self._process.stdin.write("done\n")
                self._process.stdin.close()
            except BrokenPipeError:
                pass
        self._process.wait(timeout=GRACE_S)
        (self._data_dir / PID_FILE).unlink(missing_ok=True)


def main() -> int:
    # Ctrl-C in the terminal is for the stack, which stops the servers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    children: list[Child] = []
    for line in sys.stdin:
        if line.strip() == "done":
            return 0
        children.append(Child(**json.loads(line)))
    stop_all(children)  # end of file without `done`: the stack is gone
    return 0


if __name__ == "__main__":
    sys.exit(main())
