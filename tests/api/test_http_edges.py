"""Issue 19 item 15: the edges of HTTP. One bound on headers (api.http_bounds) kept by the
server itself, so those tests go through uvicorn on a loopback port; every refusal in
the JSON error shape; ids in a safe alphabet; text NFC without control characters."""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from api.http_bounds import MAX_HEAD_BYTES, MAX_HEADER_FIELDS
from api.server import listen
from tests.api.conftest import Stack, intake


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code
    assert problem["request_id"] == response.headers["X-Request-ID"]
    return problem


# ---------------------------------------------------------------- sockets


def test_answers_are_not_held_back_by_nagle() -> None:
    """Every connection the servers accept sends at once (TCP_NODELAY). Before, none
    did: a kept-alive client (the relay posting to a receiver, a browser, the bench) waited
    about 40 ms an answer for its own delayed ACK."""
    listener = listen("127.0.0.1", 0)
    with listener, socket.create_connection(listener.getsockname()):
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


# ---------------------------------------------------------------- headers


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-Padding": "a" * 70 * 1024}, id="70 KiB header"),
        pytest.param({f"X-Field-{i}": "1" for i in range(500)}, id="500 headers"),
        pytest.param({"X-Padding": "a" * 300 * 1024}, id="300 KiB header"),
        pytest.param({"X-Padding": "a" * 1024 * 1024}, id="1 MiB header"),
    ],
)
async def test_headers_past_the_bound_get_431_in_the_json_shape(
    served: str, headers: dict[str, str]
) -> None:
    """Before: 70 KiB and 500 headers were accepted, 300 KiB got a plain-text 400 and
    1 MiB a connection reset. Now each gets the same answer, the 1 MiB one included."""
    async with httpx.AsyncClient(base_url=served) as http:
        response = await http.get("/healthz", headers=headers)
        problem = assert_problem(response, 431, "headers_too_large")
        assert "16 KiB" in problem["detail"] and "100 fields" in problem["detail"]


async def test_headers_within_the_bound_are_served(served: str) -> None:
    async with httpx.AsyncClient(base_url=served) as http:
        # httpx adds a handful of its own (host, accept, user-agent, ...).
        many = {f"X-Field-{i}": "1" for i in range(MAX_HEADER_FIELDS - 10)}
        assert (await http.get("/healthz", headers=many)).status_code == 200
        large = {"X-Padding": "a" * (MAX_HEAD_BYTES - 1024)}
        assert (await http.get("/healthz", headers=large)).status_code == 200


async def test_a_request_that_is_not_http_gets_400_in_the_json_shape(served: str) -> None:
    address = urlsplit(served)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/json" in head.lower()
    assert httpx.Response(400, content=body).json()["code"] == "bad_request"


# ---------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        pytest.param(b'{"channel": "email", "subject": "\xff\xfe"}', "not valid UTF-8", id="utf-8"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, "nests too deeply", id="nesting"),
    ],
)
async def test_a_body_that_does_not_parse_is_422(stack: Stack, body: bytes, detail: str) -> None:
    """Before: 400 `http_error`; the README promises 422 for malformed requests."""
    response = await stack.http.post(
        "/v1/tickets",
        content=body,
        headers={
            **stack.auth("backend"),
            "Idempotency-Key": f"gw-{uuid.uuid4()}",
            "Content-Type": "application/json",
        },
    )
    problem = assert_problem(response, 422, "invalid_request")
    assert detail in problem["detail"]


# ---------------------------------------------------------------- ids


async def test_an_idempotency_key_outside_ascii_is_refused(stack: Stack) -> None:
    """Before: its bytes were read as Latin-1 and the key accepted."""
    for key in ("gw-\xe9t\xe9".encode("latin-1"), "gw-été".encode()):
        headers = [(name.encode(), value.encode()) for name, value in stack.auth("backend").items()]
        response = await stack.http.post(
            "/v1/tickets", json=intake(), headers=[*headers, (b"Idempotency-Key", key)]
        )
        problem = assert_problem(response, 422, "invalid_request")
        [item] = problem["detail"]
        assert item["loc"] == ["header", "Idempotency-Key"]
        assert "printable ASCII without spaces" in item["msg"]


LOOK_ALIKES = ["cust-1\u202e", "cust\u200b-1", "cust 1", "cüst-1", "cust-1\x1b"]


@pytest.mark.parametrize("customer_id", LOOK_ALIKES)
async def test_a_customer_id_outside_the_safe_alphabet_is_refused(
    stack: Stack, customer_id: str
) -> None:
    """Before: a right-to-left override or a zero-width space made two ids that look
    the same."""
    response = await stack.http.post(
        "/v1/tickets",
        json=intake(customer_id=customer_id),
        headers={**stack.auth("backend"), "Idempotency-Key": f"gw-{uuid.uuid4()}"},
    )
    problem = assert_problem(response, 422, "invalid_request")
    assert [item["loc"] for item in problem["detail"]] == [["body", "customer_id"]]


@pytest.mark.parametrize("actor_id", LOOK_ALIKES)
async def test_an_actor_id_outside_the_safe_alphabet_is_refused(
    stack: Stack, actor_id: str
) -> None:
    tid = (await stack.open())["ticket_id"]
    response = await stack.act(tid, "responses", {"message": "在看", "actor_id": actor_id})
    problem = assert_problem(response, 422, "invalid_request")
    assert [item["loc"] for item in problem["detail"]] == [["body", "actor_id"]]


# ---------------------------------------------------------------- text


async def test_text_is_kept_as_nfc_without_control_characters(stack: Stack) -> None:
    """Before: an ESC (a terminal's escape sequence) was kept in a subject."""
    opened = await stack.open(
        subject="支付\x1b[2J失败\u202e",
        description="Cafe\u0301 app:\r\nthe card\tfails\x07\r",
    )
    state = await stack.services.tickets.state(opened["ticket_id"])
    assert state.intake.subject == "支付[2J失败"
    assert state.intake.description == "Café app:\nthe card\tfails"

    tid = opened["ticket_id"]
    replied = await stack.act(tid, "responses", {"message": "正在\x1b处理\r\n请稍候"})
    assert replied.status_code == 200, replied.text
    await stack.settled(tid)
    thread = await stack.http.get(f"/v1/tickets/{tid}/thread", headers=stack.auth("agent"))
    [reply] = [e for e in thread.json()["entries"] if e["kind"] == "agent_replied"]
    assert reply["text"] == "正在处理\n请稍候"


async def test_text_of_control_characters_only_is_empty_and_refused(stack: Stack) -> None:
    response = await stack.http.post(
        "/v1/tickets",
        json=intake(subject="\x1b\x07 \x00"),
        headers={**stack.auth("backend"), "Idempotency-Key": f"gw-{uuid.uuid4()}"},
    )
    problem = assert_problem(response, 422, "invalid_request")
    assert [item["loc"] for item in problem["detail"]] == [["body", "subject"]]
