"""The bench's worker process: the real ticket worker and the twin's, side by side.

Run by `bench.infra.start_worker_process`, never by hand. It connects, migrates nothing
(the bench did), builds the ticket worker with `workers.main.build_worker` exactly as
`ticketflow worker` does, logs as `ticketflow worker` does (JSON lines at INFO unless
told otherwise), writes the ready file once both workers poll, and drains on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path

from activities.database import create_pool
from bench.infra import connect
from bench.twin import build_twin_worker
from workers.logging import configure_logging
from workers.main import build_worker
from workflows.policy import ServicePolicy


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    client = await connect(args.target, args.namespace)
    pool = await create_pool(os.environ["BENCH_DATABASE_URL"])
    try:
        # The policy here only routes hand-offs; each ticket carries its own in its input.
        tickets = build_worker(client, args.ticket_queue, pool, ServicePolicy())
        twins = build_twin_worker(client, args.twin_queue)
        async with tickets, twins:
            await asyncio.to_thread(Path(args.ready_file).write_text, str(os.getpid()))
            await stop.wait()
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_process")
    parser.add_argument("--target", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--ticket-queue", required=True)
    parser.add_argument("--twin-queue", required=True)
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    configure_logging(args.log_level)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
