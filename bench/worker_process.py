"""The bench's worker process: the real ticket worker and the twin's, side by side.

Run by `bench.infra.start_worker_process`, never by hand. It connects, migrates nothing
(the bench did), builds the ticket worker with `workers.main.build_worker` exactly as
`ticketflow worker` does, logs as `ticketflow worker` does (JSON lines at INFO unless
told otherwise), writes the ready file once both workers poll, and drains on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from datetime import timedelta
from pathlib import Path

from pydantic import SecretStr

from activities import DEFAULT_MODELS
from activities.classifier import warm_up
from activities.database import create_pool
from activities.delivery import DeliveryConfig, OutboxRelay
from activities.messages import MessageTemplates
from bench.infra import connect
from bench.twin import build_twin_worker
from workers.logging import configure_logging
from workers.main import build_worker, start_relay
from workers.settings import STICKY_CACHE, STICKY_WAIT, WORKFLOW_SANDBOX, WORKFLOW_TASK_SLOTS
from workflows.policy import ServicePolicy


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    client = await connect(args.target, args.namespace)
    pool = await create_pool(os.environ["BENCH_DATABASE_URL"])
    relay: OutboxRelay | None = None
    try:
        # The policy here only routes hand-offs; each ticket carries its own in its input.
        policy = ServicePolicy()
        config = _relay_config()
        relay = (
            None
            if config is None
            else OutboxRelay(pool, policy, MessageTemplates.load(), config, client)
        )
        # As `ticketflow worker` does: the classifier and its encoder before polling.
        await asyncio.to_thread(warm_up, DEFAULT_MODELS)
        tickets = build_worker(
            client,
            args.ticket_queue,
            pool,
            policy,
            relay=relay,
            sticky_cache=args.sticky_cache,
            sticky_wait=timedelta(seconds=args.sticky_wait),
            workflow_task_slots=args.workflow_task_slots,
            sandboxed=args.sandbox,
        )
        twins = build_twin_worker(
            client, args.twin_queue, pool, args.sticky_cache, timedelta(seconds=args.sticky_wait)
        )
        async with tickets, twins:
            if config is not None:
                await start_relay(client, args.ticket_queue, config.relays)
            await asyncio.to_thread(Path(args.ready_file).write_text, str(os.getpid()))
            await stop.wait()
    finally:
        if relay is not None:
            await relay.close()
        await pool.close()


def _relay_config() -> DeliveryConfig | None:
    """The worker's relay settings, as `ticketflow worker` reads them, when the bench
    gives a receiver (BENCH_RELAY_URL, signed with BENCH_RELAY_SECRET): the defaults,
    with any of BENCH_RELAY_SETTINGS (DeliveryConfig's fields as JSON, e.g. its lease)."""
    url = os.environ.get("BENCH_RELAY_URL")
    if not url:
        return None
    return DeliveryConfig.model_validate(
        {
            **json.loads(os.environ.get("BENCH_RELAY_SETTINGS") or "{}"),
            "webhook_url": url,
            "secret": SecretStr(os.environ["BENCH_RELAY_SECRET"]),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_process")
    parser.add_argument("--target", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--ticket-queue", required=True)
    parser.add_argument("--twin-queue", required=True)
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--sticky-cache", type=int, default=STICKY_CACHE)
    parser.add_argument(
        "--sandbox", action=argparse.BooleanOptionalAction, default=WORKFLOW_SANDBOX
    )
    parser.add_argument("--sticky-wait", type=float, default=STICKY_WAIT.total_seconds())
    parser.add_argument("--workflow-task-slots", type=int, default=WORKFLOW_TASK_SLOTS)
    args = parser.parse_args()
    configure_logging(args.log_level)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
