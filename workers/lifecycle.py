"""Process plumbing shared by `ticketflow worker`, `ticketflow api` and `ticketflow dev`:
stop signals, and the database the worker uses."""

from __future__ import annotations

import asyncio
import faulthandler
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import structlog

from workers.settings import ConfigurationError, Settings

log = structlog.get_logger(__name__)


def stop_on_signals(stop: asyncio.Event, within: timedelta | None = None) -> None:
    """First SIGINT/SIGTERM asks for a graceful stop (in-flight activities finish); a second
    one restores the default handler so an impatient Ctrl-C still ends the process.

    With `within`, a process still alive that long after the first signal prints every
    thread's stack to stderr and exits 1 (see `exit_bound`)."""
    loop = asyncio.get_running_loop()

    def request_stop(signum: signal.Signals) -> None:
        if stop.is_set():
            loop.remove_signal_handler(signum)
            signal.raise_signal(signum)
            return
        log.info(
            "stop requested",
            signal=signum.name,
            exit_within_seconds=within.total_seconds() if within else None,
        )
        if within is not None:
            exit_bound(within)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, request_stop, signum)


def exit_bound(within: timedelta) -> None:
    """The last resort of a process asked to stop: if it is still there after `within`,
    print every thread's stack (what it is waiting for) and exit 1.

    faulthandler's watchdog is a C thread that needs no GIL, so it still fires when the
    main thread is blocked inside the SDK's native core holding the GIL (seen once: a
    worker that had logged "worker stopped" hung there until SIGKILL), where no Python
    timer could run."""
    faulthandler.dump_traceback_later(within.total_seconds(), exit=True, file=sys.stderr)


@asynccontextmanager
async def worker_database(settings: Settings, *, dev: bool = False) -> AsyncIterator[str]:
    """The PostgreSQL URL to use: `DATABASE_URL` if set, else an embedded server that is
    stopped again on exit (in the dev stack, or when TICKETFLOW_EMBEDDED_DATABASE says so)."""
    if settings.database_url:
        yield settings.database_url
        return
    if not (dev or settings.embedded_database):
        raise ConfigurationError(
            "no DATABASE_URL: outside `make dev` a worker uses the PostgreSQL the API reads; "
            "set DATABASE_URL, or TICKETFLOW_EMBEDDED_DATABASE=true for a local throwaway one"
        )
    from workers.embedded_db import start_embedded_postgres

    server = await start_embedded_postgres(settings.data_dir)
    try:
        yield server.url
    finally:
        await server.stop()


def redact_url(url: str) -> str:
    """A database URL fit for a terminal or a log line: the password replaced."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)
