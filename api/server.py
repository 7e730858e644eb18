"""The API process: uvicorn on `config.api.host:port` until `stop` is set.

`ticketflow api` and `ticketflow dev` both end in `serve`, with an `ApiConfig` made from
the worker's settings. The PostgreSQL it reads is the worker's: the caller passes its URL
(`DATABASE_URL`, or the dev stack's own). Stop signals stay with the caller (`stop`), so
the API drains next to the worker instead of grabbing Ctrl-C for itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI
from temporalio.client import Client

from activities.database import Pool, create_pool
from activities.event_store import EventStore
from activities.messages import MessageTemplates
from activities.review_store import ReviewStore
from api.access import KeyRing, configured_keys
from api.app import create_app
from api.client import ReviewClient, TicketClient
from api.deps import Services
from api.http_bounds import BoundedH11Protocol
from api.settings import ApiConfig
from api.signatures import SeenSignatures
from stores.knowledge import KnowledgeStore
from stores.policy_store import compare as compare_policy
from stores.suggestions import Suggester

log = structlog.get_logger(__name__)


async def build_services(config: ApiConfig, client: Client, pool: Pool) -> Services:
    """Connect the API to Temporal and PostgreSQL (migrated by the workers or
    `ticketflow migrate`: the API creates no table)."""
    api = config.api
    keys = KeyRing(configured_keys(api))
    if not keys:
        log.warning("no API keys configured: every /v1 request will be refused (401)")
    signatures = SeenSignatures(pool, api.signature_tolerance)
    knowledge = KnowledgeStore(pool)
    return Services(
        tickets=TicketClient(
            client,
            task_queue=config.task_queue,
            policy=config.policy,
            raise_when_behind=api.raise_when_behind,
        ),
        pool=pool,
        events=EventStore(pool),
        keys=keys,
        signatures=signatures,
        partner_secrets={
            name: secret.get_secret_value() for name, secret in api.partner_secrets.items()
        },
        settings=api,
        templates=MessageTemplates.load(
            config.templates_file, config.policy.default_locale, config.policy.staff_locale
        ),
        policy=config.policy,
        time_zone=config.policy.time_zone,
        reviews=ReviewClient(client, task_queue=config.task_queue, policy=config.policy),
        review_store=ReviewStore(pool, config.policy),
        knowledge=knowledge,
        suggester=Suggester(knowledge),
    )


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The caller owns SIGINT/SIGTERM and tells us through `stop`.
        yield


async def serve(config: ApiConfig, client: Client, stop: asyncio.Event, database_url: str) -> None:
    """Serve until `stop` is set, then finish in-flight requests and return."""
    api = config.api
    pool = await create_pool(database_url)
    try:
        app = create_app(await build_services(config, client, pool))
        with contextlib.suppress(Exception):  # an unmigrated database says so in /readyz
            policy = await compare_policy(pool, config.task_queue, config.policy)
            if not policy.startswith("ok"):
                log.warning("this API's ticket policy " + policy, task_queue=config.task_queue)
        # Open workspace pages hold a live stream each: they end first, or the server
        # would wait out its grace for them.
        closing = asyncio.create_task(_close_on(stop, app.state.desk.close))
        try:
            await serve_app(
                app,
                api.host,
                api.port,
                stop,
                proxy_headers=True,
                forwarded_allow_ips=api.forwarded_allow_ips,
                timeout_graceful_shutdown=10,
            )
        finally:
            await app.state.desk.close()
            closing.cancel()
            await app.state.services.tickets.aclose()
        log.info("api stopped")
    finally:
        await pool.close()


async def _close_on(stop: asyncio.Event, close: Callable[[], Awaitable[None]]) -> None:
    await stop.wait()
    await close()


async def serve_app(
    app: FastAPI, host: str, port: int, stop: asyncio.Event, **options: Any
) -> None:
    """Serve `app` with uvicorn until `stop` is set, then finish in-flight requests."""
    uvicorn_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        # Our middleware writes the access log (without IPs); uvicorn's would not.
        access_log=False,
        # h11 with one bound on headers, and refusals in the API's JSON shape.
        http=BoundedH11Protocol,
        log_config=None,
        server_header=False,
        **options,
    )
    server = _Server(uvicorn_config)
    # Bound here: uvicorn's own bind calls sys.exit() on failure, which would end the
    # whole dev stack without a word.
    listener = listen(host, port)
    serving = asyncio.create_task(server.serve(sockets=[listener]), name="uvicorn")
    stopping = asyncio.create_task(stop.wait(), name="server-stop")
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopping.cancel()
        await serving
        listener.close()


def listen(host: str, port: int) -> socket.socket:
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        listener = socket.create_server(address[:2], family=family)
        # Answers go out at once. asyncio sets TCP_NODELAY only on sockets made with
        # proto=IPPROTO_TCP, and create_server's (and so every accepted one's) is 0: uvicorn
        # writes a response's head and body apart, and on a kept-alive connection Nagle
        # held the body for the client's delayed ACK, about 40 ms an answer. Accepted
        # sockets inherit the option from the listener.
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return listener
    except OSError as error:
        raise OSError(
            f"cannot listen on {host}:{port} ({error.strerror or error}); "
            "change the port in the settings or stop what uses it"
        ) from None
