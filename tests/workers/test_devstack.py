"""`make dev` as a newcomer runs it: the whole stack from one command, its UI pointed at
the codec server, and nothing left behind when it is killed hard."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from api.dev_keys import load_or_create
from tests.codec_keys import CODEC_ENV, TEST_KEYS
from tests.waiting import eventually
from workers.codec import EncryptionCodec
from workers.devspec import DEV_FILE, LOCAL_IP, load_dev_spec, parse_command
from workers.devstack import ensure_port_free, free_port
from workers.reaper import PID_FILE, Child, child, clean_leftovers, record
from workers.temporal_client import connect_options, default_address

ROOT = Path(__file__).resolve().parents[2]
UP = "ticketflow dev stack is up"

# Run as root, embedded PostgreSQL runs as a user of its own; the session's database
# fixture opens the test directories' parents to it, as the whole suite does anyway.
pytestmark = pytest.mark.usefixtures("database_url")


@dataclass
class RunningStack:
    process: asyncio.subprocess.Process
    data_dir: Path
    port: int
    ui_port: int
    codec_port: int
    output: list[str]


def processes_mentioning(text: str) -> dict[int, str]:
    """Live processes whose command line names `text` (our data directory)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in command and state != "Z":
            found[int(entry.name)] = command
    return found


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


def all_gone(
    marker: str, pids: list[int], within: float = 30.0
) -> tuple[dict[int, str], list[int]]:
    """Waits for the processes to exit; what is still there after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        servers = processes_mentioning(marker)
        others = [pid for pid in pids if Path(f"/proc/{pid}/cmdline").exists()]
        if not (servers or others) or time.monotonic() > deadline:
            return servers, others
        time.sleep(0.2)


async def ui_settings(http: httpx.AsyncClient, port: int) -> dict[str, Any]:
    """The UI's settings; the UI may start listening a moment after the gRPC port."""
    deadline = time.monotonic() + 30
    while True:
        try:
            answer: dict[str, Any] = (
                await http.get(f"http://127.0.0.1:{port}/api/v1/settings")
            ).json()
            return answer
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.1)


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((LOCAL_IP, port))
        except OSError:
            return False
        return True


@dataclass
class StackPorts:
    port: int
    ui_port: int
    codec_port: int
    api_port: int
    receiver_port: int

    @classmethod
    def free(cls) -> StackPorts:
        return cls(*(free_port() for _ in range(5)))


def stack_env(data_dir: Path, ports: StackPorts, *, receiver: bool = False) -> dict[str, str]:
    """`make dev`'s environment on the test's own ports and data directory. With
    `receiver`, deliveries go to the stack's own receiver (as a newcomer's do)."""
    env = {
        **os.environ,
        **CODEC_ENV,
        "TICKETFLOW_DATA_DIR": str(data_dir),
        "TICKETFLOW_API__PORT": str(ports.api_port),
        "TICKETFLOW_CODEC__SERVER__PORT": str(ports.codec_port),
        "TICKETFLOW_DEV_RECEIVER_PORT": str(ports.receiver_port),
        "TICKETFLOW_DELIVERY__WEBHOOK_URL": "http://127.0.0.1:9/never",
        "TICKETFLOW_DELIVERY__SECRET": "s" * 32,
    }
    env.pop("DATABASE_URL", None)
    if receiver:
        env.pop("TICKETFLOW_DELIVERY__WEBHOOK_URL")
    return env


def new_data_dir(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # The classifier the session trained: a fresh stack would spend seconds training one.
    (data_dir / "models").symlink_to((ROOT / ".data" / "models").resolve())
    return data_dir


def dev_file_for(tmp_path: Path, ports: StackPorts) -> Path:
    yml = DEV_FILE.read_text().replace("--port=7233", f"--port={ports.port}")
    dev_file = tmp_path / "temporal-dev.yml"
    dev_file.write_text(yml.replace("--ui-port=8233", f"--ui-port={ports.ui_port}"))
    return dev_file


async def spawn_dev(dev_file: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers.cli",
        "dev",
        "--file",
        str(dev_file),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # its own process group, as `make dev` in a terminal
    )


async def launch(
    dev_file: Path, env: dict[str, str]
) -> tuple[asyncio.subprocess.Process, list[str]]:
    """`make dev` in its own process group, as in a terminal; its output once it is up."""
    process = await spawn_dev(dev_file, env)
    output: list[str] = []

    async def until_up() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            output.append(raw.decode(errors="replace"))
            if UP in output[-1]:
                return
        raise AssertionError("make dev exited:\n" + "".join(output[-30:]))

    async def drain() -> None:  # a full pipe would block the stack's prints
        assert process.stdout is not None
        async for raw in process.stdout:
            output.append(raw.decode(errors="replace"))

    try:
        await asyncio.wait_for(until_up(), 120)
    except BaseException:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        raise
    DRAINS.add(asyncio.create_task(drain()))
    return process, output


DRAINS: set[asyncio.Task[None]] = set()


async def ctrl_c(process: asyncio.subprocess.Process) -> int:
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
    return await asyncio.wait_for(process.wait(), 60)


def kill_leftovers(process: asyncio.subprocess.Process | None, data_dir: Path) -> None:
    if process is not None and process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    for pid in processes_mentioning(str(data_dir)):  # a failed test leaves no orphan
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
async def dev_stack(tmp_path: Path) -> AsyncIterator[RunningStack]:
    ports = StackPorts.free()
    data_dir = new_data_dir(tmp_path)
    process: asyncio.subprocess.Process | None = None
    try:
        process, output = await launch(dev_file_for(tmp_path, ports), stack_env(data_dir, ports))
        yield RunningStack(process, data_dir, ports.port, ports.ui_port, ports.codec_port, output)
    finally:
        if process is not None and process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        kill_leftovers(process, data_dir)


async def test_sigkill_of_make_dev_leaves_no_process_behind(dev_stack: RunningStack) -> None:
    marker = str(dev_stack.data_dir)
    servers = processes_mentioning(marker)
    assert any("start-dev" in command for command in servers.values()), servers
    assert any("postgres" in command for command in servers.values()), servers
    reapers = [
        pid
        for pid in children_of(dev_stack.process.pid)
        if pid in processes_mentioning("workers.reaper")
    ]
    assert len(reapers) == 1
    assert json.loads((dev_stack.data_dir / "dev-servers.json").read_text())["servers"]

    # The UI was pointed at the codec server, with the dev operator key in the path.
    async with httpx.AsyncClient() as http:
        settings = await ui_settings(http, dev_stack.ui_port)
        endpoint = settings["Codec"]["Endpoint"]
        operator = load_or_create(dev_stack.data_dir).keys["operator"]
        assert endpoint == f"http://{LOCAL_IP}:{dev_stack.codec_port}/{operator}"
        # And the endpoint opens what the stack's workers seal.
        [sealed] = await EncryptionCodec(TEST_KEYS).encode(
            [Payload(metadata={"encoding": b"json/plain"}, data=b'"hi"')]
        )
        body = json_format.MessageToJson(Payloads(payloads=[sealed]))
        opened = await http.post(f"{endpoint}/decode", content=body)
        assert json_format.Parse(opened.text, Payloads()).payloads[0].data == b'"hi"'

    os.killpg(dev_stack.process.pid, signal.SIGKILL)
    await dev_stack.process.wait()
    assert await asyncio.to_thread(all_gone, marker, reapers) == ({}, [])
    assert port_free(dev_stack.port) and port_free(dev_stack.ui_port)


async def test_ctrl_c_stops_everything_cleanly(dev_stack: RunningStack) -> None:
    assert await ctrl_c(dev_stack.process) == 0
    assert await asyncio.to_thread(all_gone, str(dev_stack.data_dir), []) == ({}, [])
    assert not (dev_stack.data_dir / PID_FILE).exists()
    assert port_free(dev_stack.port) and port_free(dev_stack.codec_port)


def test_one_port_setting_moves_every_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """The port in temporal-dev.yml is where `make demo`, the CLI and clients connect by
    default; TEMPORAL_ADDRESS (or a profile) still wins."""
    from workers.settings import Settings

    monkeypatch.delenv("TEMPORAL_ADDRESS", raising=False)
    monkeypatch.setattr(
        "workers.devspec.load_dev_spec",
        lambda: parse_command(["server", "start-dev", "--port=7399", "--ui-port=8399"]),
    )
    assert default_address() == f"{LOCAL_IP}:7399"
    assert connect_options(Settings())["target_host"] == f"{LOCAL_IP}:7399"
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal.example:7233")
    assert connect_options(Settings())["target_host"] == "temporal.example:7233"


async def test_the_bench_starts_its_server_with_the_dev_stacks_launcher(tmp_path: Path) -> None:
    """One launcher: the bench's server is `make dev`'s (temporal-dev.yml's behaviour) on
    ports and a file of its own, with the bench's extra dynamic config, and stops for good."""
    from bench.infra import start_dev_server

    spec = load_dev_spec()
    lowered = "limit.historyCount.suggestContinueAsNew=60"
    server = await start_dev_server(tmp_path, "bench-temporal", [lowered])
    try:
        running = await asyncio.to_thread(processes_mentioning, str(server.db_path))
        command = running[server.pid].split()
        assert command[-1] == f"--dynamic-config-value={lowered}"
        assert set(spec.behaviour_args()) <= set(command)
        assert server.target != f"{LOCAL_IP}:{spec.port}"
        listed = await server.client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=server.namespace)
        )
        assert set(spec.search_attributes()) <= set(listed.custom_attributes)
    finally:
        await server.stop()
    assert server.process.returncode is not None
    assert await asyncio.to_thread(processes_mentioning, str(server.db_path)) == {}


def test_the_next_start_stops_what_the_last_one_left(tmp_path: Path) -> None:
    """If the reaper itself was killed too, the pid file names the servers; a recycled pid
    (same number, other start time) is never signalled."""
    left = subprocess.Popen(["sleep", "60"])
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        found = child(left.pid, signal.SIGTERM, "temporal")
        assert found is not None
        recycled = Child(bystander.pid, "1", int(signal.SIGTERM), "postgres")
        # While the stack that owns them runs (here: this test), its servers are its own.
        record(tmp_path, [found, recycled])
        assert clean_leftovers(tmp_path) == []
        assert left.poll() is None
        dead_owner = Child(os.getpid(), "1", int(signal.SIGTERM), "stack")
        record(tmp_path, [found, recycled], owner=dead_owner)
        assert clean_leftovers(tmp_path) == ["temporal"]
        assert left.wait(timeout=5) == -signal.SIGTERM
        assert bystander.poll() is None
        assert not (tmp_path / PID_FILE).exists()
        assert clean_leftovers(tmp_path) == []
    finally:
        for process in (left, bystander):
            process.kill()
            process.wait()


def test_the_port_probe_ignores_connections_in_time_wait() -> None:
    """A stack stopped a moment ago leaves its accepted connections in TIME-WAIT for a
    minute; they hold no port, and `make dev` right after starts."""
    port = free_port()
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOCAL_IP, port))
        listener.listen()
        with socket.create_connection((LOCAL_IP, port)) as client:
            accepted, _ = listener.accept()
            accepted.close()  # the server side closes first: its end waits in TIME-WAIT
            client.recv(1)
    assert f":{port:04X} " in Path("/proc/net/tcp").read_text()  # the TIME-WAIT is there
    ensure_port_free(port, "a server")  # raises if the probe took TIME-WAIT for a listener


async def test_a_held_port_refuses_the_start_before_anything_runs(tmp_path: Path) -> None:
    """Every port is checked before a server starts, so a refused start leaves nothing
    running (a PostgreSQL left behind would be adopted by the next stack)."""
    ports = StackPorts.free()
    data_dir = new_data_dir(tmp_path)
    env = stack_env(data_dir, ports, receiver=True)
    with socket.socket() as holder:  # another program on the receiver's port
        holder.bind((LOCAL_IP, ports.receiver_port))
        holder.listen()
        process = await spawn_dev(dev_file_for(tmp_path, ports), env)
        try:
            output, _ = await asyncio.wait_for(process.communicate(), 60)
        finally:
            kill_leftovers(process, data_dir)
    text = output.decode(errors="replace")
    assert process.returncode != 0
    assert f"port {ports.receiver_port} (the dev delivery receiver) is in use" in text
    assert processes_mentioning(str(data_dir)) == {}
    assert not (data_dir / "postgres").exists()  # PostgreSQL never started
    assert port_free(ports.port)


def readme_filters() -> list[str]:
    """The example queries of the README's "Filter" bullet."""
    text = (ROOT / "README.md").read_text()
    bullet = text[text.index("- **Filter**") : text.index("All of them:")]
    queries = re.findall(r"`([^`]*(?:=|<)[^`]*)`", bullet)
    assert len(queries) >= 5, queries
    return queries


async def workspace_shows_the_demo(http: httpx.AsyncClient, key: str, ports: StackPorts) -> None:
    signin = await http.get("/app/signin")
    token = re.search(r'name="csrf" value="([^"]+)"', signin.text)
    assert token is not None
    signed = await http.post("/app/signin", data={"csrf": token.group(1), "key": key})
    assert signed.status_code == 303, signed.text
    queue = await http.get("/app/", params={"view": "all"}, headers={"Accept": "text/html"})
    assert queue.status_code == 200
    overdue = re.search(r'data-count="overdue">(\d+)<', queue.text)
    assert overdue is not None and int(overdue.group(1)) > 0  # the demo's breaches
    opened = re.findall(r'href="/app/tickets/(ticket-[0-9a-f]+)"', queue.text)
    assert len(opened) >= 5
    page = await http.get(f"/app/tickets/{opened[0]}", headers={"Accept": "text/html"})
    assert page.status_code == 200
    # Its workflow, one click away in the dev server's UI.
    assert f"http://localhost:{ports.ui_port}/namespaces/default/workflows/{opened[0]}" in page.text


async def test_make_dev_then_make_demo_then_a_restart(tmp_path: Path) -> None:
    """The README's first hour: `make dev` (no keys configured: it makes its own), then
    `make demo` in another terminal, which finds the stack's key by itself; then Ctrl-C and
    `make dev` again at once, on the same ports, with the connections of the first run
    still in TIME-WAIT. A PostgreSQL orphaned by a stack killed with -9 before all this is
    adopted, and stopped with the stack like its own."""
    ports = StackPorts.free()
    data_dir = new_data_dir(tmp_path)
    env = stack_env(data_dir, ports, receiver=True)
    env.pop("TICKETFLOW_CODEC__KEYS")  # as on a newcomer's machine
    # A stack killed with -9 after PostgreSQL started, its reaper killed too.
    orphan = (
        "import os, sys; from pathlib import Path; from workers.embedded_db import _start; "
        "_start(Path(sys.argv[1])); os._exit(0)"
    )
    await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", orphan, str(data_dir)], cwd=ROOT, env=env, check=True
    )
    assert any("postgres" in c for c in processes_mentioning(str(data_dir)).values())
    dev_file = dev_file_for(tmp_path, ports)
    process: asyncio.subprocess.Process | None = None
    try:
        process, output = await launch(dev_file, env)
        assert (data_dir / "codec-keys.json").exists()
        demo = await asyncio.create_subprocess_exec(
            "make",
            "-s",
            "demo",
            cwd=ROOT,
            env={**env, "TEMPORAL_ADDRESS": f"{LOCAL_IP}:{ports.port}"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        said, _ = await asyncio.wait_for(demo.communicate(), 180)
        assert demo.returncode == 0, said.decode(errors="replace")[-3000:]
        assert "acting done" in said.decode()
        # What the demo points at next: satisfaction on the dashboard, a weekly review.
        lead = {"Authorization": f"Bearer {load_or_create(data_dir).keys['manager']}"}
        async with httpx.AsyncClient(base_url=f"http://{LOCAL_IP}:{ports.api_port}") as http:
            now = datetime.now(UTC)
            window = {"from": (now - timedelta(hours=1)).isoformat(), "to": now.isoformat()}

            async def health_now() -> Any:
                return (await http.get("/v1/metrics", params=window, headers=lead)).json()

            # The ratings are signals: recorded a moment later.
            health = await eventually(
                health_now, lambda now: now["groups"][0]["csat_satisfied"]["n"] == 2
            )
            assert health["groups"][0]["csat_satisfied"] == {"n": 2, "part": 1, "percent": 50.0}
            assert health["groups"][0]["nps"] == 2
            review = await http.post("/v1/reviews", json={"so_far": True}, headers=lead)
            assert review.status_code == 201, review.text
            # The README's next step: the workspace, signed in with the agent key printed.
            assert "/app/  (sign in with the agent" in "".join(output)
            await workspace_shows_the_demo(http, load_or_create(data_dir).keys["agent"], ports)
        # Every filter the README suggests for the UI finds some of the demo's tickets.
        temporal = await Client.connect(f"{LOCAL_IP}:{ports.port}")
        for query in readme_filters():
            found = await eventually(
                functools.partial(temporal.count_workflows, query),
                lambda counted: counted.count > 0,
                within=10,
            )
            assert found.count, f"the README's filter {query!r} finds no demo ticket"

        assert await ctrl_c(process) == 0, "".join(output[-40:])
        assert await asyncio.to_thread(all_gone, str(data_dir), []) == ({}, [])
        process, output = await launch(dev_file, env)  # at once: no "port in use"
        assert await ctrl_c(process) == 0, "".join(output[-40:])
        assert await asyncio.to_thread(all_gone, str(data_dir), []) == ({}, [])
    finally:
        kill_leftovers(process, data_dir)
