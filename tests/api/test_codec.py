"""Payload encryption on the real dev server, and the codec server operators read it through.

Nothing the customer said reaches the Temporal server in plaintext; with the key, the codec
server (`ticketflow codec-server`) gives it back to an operator's key, to `temporal
workflow show --codec-endpoint`, and to a browser page on the UI's origin (its CORS
preflight included), and to nobody else.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from google.protobuf import json_format
from playwright.async_api import Browser
from temporalio.api.common.v1 import Payload, Payloads

from api.access import KeyRing, configured_keys
from api.server import serve_app
from api.settings import ConfigurationError
from tests.api.conftest import Stack, api_settings
from tests.codec_keys import TEST_KEY_ID, TEST_KEYS
from workers.codec import (
    ENCODING,
    CodecError,
    CodecServerSettings,
    CodecSettings,
    EncryptionCodec,
    StaticKeys,
    data_converter,
)
from workers.codec_server import create_codec_app
from workers.devstack import free_port

UI_ORIGIN = "http://localhost:8233"


def opened(answer: str) -> bytes:
    """The data of every payload in a codec server's answer, joined."""
    return b"".join(p.data for p in json_format.Parse(answer, Payloads()).payloads)


def payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


# ---------------------------------------------------------------- the codec itself


async def test_sealed_payloads_open_only_with_their_key() -> None:
    codec = EncryptionCodec(TEST_KEYS)
    [sealed] = await codec.encode([payload("手机号 13800138000")])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata["encryption-key-id"] == TEST_KEY_ID.encode()
    assert b"13800138000" not in sealed.SerializeToString()
    assert await codec.decode([sealed]) == [payload("手机号 13800138000")]

    other = EncryptionCodec(StaticKeys({TEST_KEY_ID: bytes(32)}, TEST_KEY_ID))
    with pytest.raises(CodecError, match="fails authentication"):
        await other.decode([sealed])
    stranger = EncryptionCodec(StaticKeys({"other": bytes(32)}, "other"))
    with pytest.raises(CodecError, match="lacks"):
        await stranger.decode([sealed])


async def test_rotation_seals_with_the_primary_and_opens_with_any_key() -> None:
    old = EncryptionCodec(TEST_KEYS)
    [before] = await old.encode([payload("old")])
    rotated = EncryptionCodec(
        StaticKeys({TEST_KEY_ID: TEST_KEYS.keys[TEST_KEY_ID], "k2": b"k" * 32}, "k2")
    )
    [after] = await rotated.encode([payload("new")])
    assert after.metadata["encryption-key-id"] == b"k2"
    assert await rotated.decode([before, after]) == [payload("old"), payload("new")]


async def test_tampering_and_relabelling_are_refused() -> None:
    codec = EncryptionCodec(StaticKeys({"a": b"a" * 32, "b": b"a" * 32}, "a"))
    [sealed] = await codec.encode([payload("x")])
    flipped = Payload()
    flipped.CopyFrom(sealed)
    flipped.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata["encryption-key-id"] = b"b"  # same key bytes, other id
    for bad in (flipped, relabelled):
        with pytest.raises(CodecError):
            await codec.decode([bad])


async def test_plaintext_written_before_encryption_still_decodes() -> None:
    assert await EncryptionCodec(TEST_KEYS).decode([payload("明文")]) == [payload("明文")]
    converter = data_converter(TEST_KEYS)
    assert await converter.decode([payload("明文")], [str]) == ["明文"]


# ---------------------------------------------------------------- on the dev server


async def raw_history_payloads(stack: Stack, ticket_id: str) -> list[Payload]:
    """Every payload of the ticket's history as the server stores it."""
    history = await stack.env.client.get_workflow_handle(ticket_id).fetch_history()
    found: list[Payload] = []

    def walk(message: object) -> None:
        if isinstance(message, Payload):
            found.append(message)
            return
        for field, value in message.ListFields():  # type: ignore[attr-defined]
            # Search attributes are indexed by the server, never encoded (by design: they
            # hold no personal data, workflows/search_attributes.py).
            if field.message_type is None or field.name == "search_attributes":
                continue
            if hasattr(value, "ListFields"):
                walk(value)
            else:  # a repeated field or a map
                for item in value.values() if hasattr(value, "values") else value:
                    walk(item)

    for event in history.events:
        marker = event.marker_recorded_event_attributes
        # The SDK writes its markers' own bookkeeping outside the codec: patch ids, and a
        # local activity's sequence number, attempt and times. Its result is sealed.
        if marker.marker_name == "core_patch":
            continue
        if marker.marker_name == "core_local_activity":
            found.extend(marker.details["result"].payloads)
            continue
        walk(event)
    return found


@contextlib.asynccontextmanager
async def codec_server(stack: Stack, ui_origin: str = UI_ORIGIN) -> AsyncIterator[str]:
    settings = CodecServerSettings(port=free_port(), cors_origins=[ui_origin])
    keys = KeyRing(configured_keys(api_settings(stack.keys)))
    app = create_codec_app(EncryptionCodec(TEST_KEYS), keys, settings)
    async with serving(app, settings.port) as url:
        yield url


@pytest.fixture
async def codec_url(stack: Stack) -> AsyncIterator[str]:
    async with codec_server(stack) as url:
        yield url


@pytest.fixture
async def sealed_ticket(stack: Stack) -> tuple[str, str, list[Payload]]:
    marker = f"续费失败{uuid.uuid4().hex[:8]}"
    opened = await stack.open(
        subject=marker,
        description=f"{marker} 联系我 13912345678",
    )
    ticket_id = opened["ticket_id"]
    await stack.settled(ticket_id)
    return ticket_id, marker, await raw_history_payloads(stack, ticket_id)


async def test_the_server_holds_no_plaintext_of_the_customer(
    sealed_ticket: tuple[str, str, list[Payload]],
) -> None:
    _, marker, payloads = sealed_ticket
    assert len(payloads) >= 5  # input, user metadata, activity inputs and results
    assert [p for p in payloads if p.metadata["encoding"] != ENCODING] == []
    stored = b"".join(p.SerializeToString() for p in payloads)
    # The ASGI test client's address stands in for the customer's IP.
    for secret in (marker, "13912345678", "testclient", "续费"):
        assert secret.encode() not in stored


async def test_the_codec_server_decrypts_for_operators_only(
    stack: Stack, codec_url: str, sealed_ticket: tuple[str, str, list[Payload]]
) -> None:
    _, marker, payloads = sealed_ticket
    body = json_format.MessageToJson(Payloads(payloads=payloads))
    async with httpx.AsyncClient(base_url=codec_url) as http:
        for role in ("operator", "manager"):
            answer = await http.post("/decode", content=body, headers=stack.auth(role))
            assert answer.status_code == 200, answer.text
            assert marker.encode() in opened(answer.text)
            decoded = json_format.Parse(answer.text, Payloads())
            assert all(p.metadata["encoding"] != ENCODING for p in decoded.payloads)
        # The UI's form: the key in the path.
        in_path = await http.post(f"/{stack.keys['operator']}/decode", content=body)
        assert marker.encode() in opened(in_path.text)
        assert (await http.post("/decode", content=body)).status_code == 401
        assert (
            await http.post("/decode", content=body, headers=stack.auth("agent"))
        ).status_code == 403
        assert (await http.post("/nonsense/decode", content=body)).status_code == 401
        bad = await http.post("/decode", content=b"{not json", headers=stack.auth("operator"))
        assert bad.status_code == 400
        # What an operator types in the UI is sealed on the way in.
        typed = json_format.MessageToJson(Payloads(payloads=[payload("hello")]))
        encoded = await http.post("/encode", content=typed, headers=stack.auth("operator"))
        [sealed] = json_format.Parse(encoded.text, Payloads()).payloads
        assert sealed.metadata["encoding"] == ENCODING


async def test_temporal_cli_shows_payloads_through_the_codec_server(
    stack: Stack, codec_url: str, sealed_ticket: tuple[str, str, list[Payload]]
) -> None:
    ticket_id, marker, _ = sealed_ticket
    address = stack.env.client.service_client.config.target_host
    command = [
        str(Path(sys.prefix) / "bin" / "temporal"),
        "workflow",
        "show",
        "--address",
        address,
        "--workflow-id",
        ticket_id,
        "--output",
        "json",
    ]
    auth = f"Bearer {stack.keys['operator']}"
    assert marker.encode() not in shown_data(await run(command))
    shown = await run([*command, "--codec-endpoint", codec_url, "--codec-auth", auth])
    assert marker.encode() in shown_data(shown)


def shown_data(output: str) -> bytes:
    """Every payload's data in `temporal workflow show --output json`, base64-decoded."""
    found: list[bytes] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "data" and isinstance(value, str):
                    found.append(base64.b64decode(value))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(output))
    return b"".join(found)


async def run(command: list[str]) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


@contextlib.asynccontextmanager
async def page_origin() -> AsyncIterator[str]:
    """A real local origin serving an empty page: it stands in for the Temporal UI's (a
    browser lets only loopback pages call loopback servers)."""
    app = FastAPI()

    @app.get("/")
    async def empty() -> HTMLResponse:
        return HTMLResponse("<html></html>")

    async with serving(app, free_port()) as origin:
        yield origin


@contextlib.asynccontextmanager
async def serving(app: FastAPI, port: int) -> AsyncIterator[str]:
    """`app` under uvicorn on a local port, as the processes serve theirs; its URL."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve_app(app, "127.0.0.1", port, stop))
    url = f"http://127.0.0.1:{port}"
    await wait_listening(url)
    try:
        yield url
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def wait_listening(url: str) -> None:
    async with httpx.AsyncClient() as probe:
        for _ in range(100):
            try:
                await probe.get(url)
                return
            except httpx.TransportError:
                await asyncio.sleep(0.05)


FETCH = """async ([url, body]) => {
    try {
        const r = await fetch(url, {method: 'POST', body,
            headers: {'Content-Type': 'application/json', 'X-Namespace': 'default'}});
        return [r.status, await r.text()];
    } catch (e) { return [0, String(e)]; }
}"""


async def test_a_browser_on_the_ui_origin_passes_the_preflight(
    stack: Stack, browser: Browser, sealed_ticket: tuple[str, str, list[Payload]]
) -> None:
    _, marker, payloads = sealed_ticket
    body = json_format.MessageToJson(Payloads(payloads=payloads))
    async with page_origin() as ui, page_origin() as elsewhere, codec_server(stack, ui) as codec:
        url = f"{codec}/{stack.keys['operator']}/decode"
        context = await browser.new_context()
        page = await context.new_page()
        # A JSON body and an X-Namespace header: the browser sends a real preflight first.
        await page.goto(ui)
        status, text = await page.evaluate(FETCH, [url, body])
        assert status == 200, text
        assert marker.encode() in opened(text)

        await page.goto(elsewhere)
        status, text = await page.evaluate(FETCH, [url, body])
        assert (status, text) == (0, "TypeError: Failed to fetch")
        await context.close()

        async with httpx.AsyncClient(base_url=codec) as http:
            preflight = {"Access-Control-Request-Method": "POST"}
            allowed = await http.options(
                "/decode",
                headers={
                    "Origin": ui,
                    "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
                    **preflight,
                },
            )
            assert allowed.status_code == 200
            assert allowed.headers["access-control-allow-origin"] == ui
            refused = await http.options("/decode", headers={"Origin": elsewhere, **preflight})
            assert "access-control-allow-origin" not in refused.headers


async def test_a_history_saved_before_encryption_still_replays() -> None:
    """Some saved histories were recorded in plaintext; the encrypting converter replays
    them (tests/workflows/test_replay.py replays every one of them the same way)."""
    from temporalio.client import WorkflowHistory

    from tests.workflows.test_replay import LONG_LIVED, SAVED, long_lived_replayer

    # The weekly review's, recorded before payloads were sealed; today's recordings are.
    name = "review/weekly_review"
    sealed = WorkflowHistory.from_json("standard_lifecycle", SAVED["standard_lifecycle"])
    first = sealed.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    assert first.metadata["encoding"] == ENCODING
    history = WorkflowHistory.from_json(name, LONG_LIVED[name])
    started = history.events[0].workflow_execution_started_event_attributes
    assert started.input.payloads
    assert all(p.metadata["encoding"] != ENCODING for p in started.input.payloads)
    result = await long_lived_replayer().replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None


async def test_a_client_in_a_dev_checkout_finds_the_dev_stack_key(tmp_path: Path) -> None:
    """`make demo`, the CLI and a script configure no keys: from the checkout `make dev`
    runs in, they use its key; elsewhere the error says what works."""
    from workers.codec import dev_keys
    from workers.settings import Settings
    from workers.temporal_client import codec_keys

    unconfigured = Settings(data_dir=tmp_path, codec=CodecSettings())
    with pytest.raises(ConfigurationError, match="TICKETFLOW_DATA_DIR") as refused:
        codec_keys(unconfigured)
    assert "KEYS_FILE" in str(refused.value)
    made = dev_keys(tmp_path)  # what `make dev` does on its first start
    found = codec_keys(unconfigured)
    assert found is not None
    assert await found.primary_key_id() == await made.primary_key_id()
    sealed = await EncryptionCodec(made).encode([payload("hi")])
    assert (await EncryptionCodec(found).decode(sealed))[0].data == payload("hi").data

    # A process told to run without keys names the fix when it meets a sealed payload,
    # instead of the SDK's "unknown payload encoding".
    plaintext = data_converter(None).payload_codec
    assert plaintext is not None
    with pytest.raises(CodecError, match="KEYS_FILE"):
        await plaintext.decode(sealed)
    assert (await plaintext.decode([payload("hi")]))[0].data == payload("hi").data
