"""One bound on request headers, kept by the HTTP server for every app it serves.

A request's line and headers together are at most MAX_HEAD_BYTES (16 KiB), in at most
MAX_HEADER_FIELDS (100) fields. Beyond either, the answer is 431 in the API's JSON error
shape, whether the head arrived whole (checked once h11 has parsed it) or is still
arriving past the bound (h11 stops buffering it). The same goes for a request that is
not HTTP at all: 400 in the same shape, never uvicorn's plain text.

After such an answer the server goes on reading, and dropping, what the client is still
sending (up to LINGER_BYTES for LINGER_SECONDS) before it closes: closing a socket with
unread data resets the connection, and the client would see a reset instead of the 431.

uvicorn serves with `BoundedH11Protocol` (api.server.serve_app): its h11 protocol with
this bound and this answer; h11 reports an over-long head with status hint 431.
"""

from __future__ import annotations

import json
import uuid
from http import HTTPStatus
from typing import Any

import h11
import structlog
from uvicorn.protocols.http.h11_impl import H11Protocol

log = structlog.get_logger("api.access")

MAX_HEAD_BYTES = 16 * 1024
MAX_HEADER_FIELDS = 100
TOO_LARGE = (
    f"request headers are limited to {MAX_HEAD_BYTES // 1024} KiB with the request line, "
    f"in at most {MAX_HEADER_FIELDS} fields"
)
LINGER_SECONDS = 5.0
LINGER_BYTES = 8 * 1024 * 1024


def head_size(request: h11.Request) -> int:
    """The request line and headers as they came, give or take optional whitespace."""
    line = len(request.method) + 1 + len(request.target) + len(b" HTTP/1.1\r\n")
    fields = sum(len(name) + len(value) + 4 for name, value in request.headers)
    return line + fields + 2


class _BoundedConnection(h11.Connection):
    """h11's connection, refusing a parsed head past the bound as it refuses one that
    grows past it unparsed, and remembering why it refused (uvicorn does not say)."""

    refusal: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            event = super().next_event()
            if isinstance(event, h11.Request) and (
                len(event.headers) > MAX_HEADER_FIELDS or head_size(event) > MAX_HEAD_BYTES
            ):
                raise h11.RemoteProtocolError(TOO_LARGE, error_status_hint=431)
            return event
        except h11.RemoteProtocolError as error:
            self.refusal = error
            raise


class BoundedH11Protocol(H11Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _BoundedConnection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._dropped: int | None = None  # counting what is dropped once refused

    def data_received(self, data: bytes) -> None:
        if self._dropped is None:
            super().data_received(data)
            return
        self._dropped += len(data)
        if self._dropped > LINGER_BYTES:
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request h11 refused, in the API's shape."""
        refusal = getattr(self.conn, "refusal", None)
        status = refusal.error_status_hint if refusal is not None else 400
        if status == 431:
            code, detail = "headers_too_large", TOO_LARGE
        else:
            status, code, detail = 400, "bad_request", "the request is not valid HTTP/1.1"
        request_id = uuid.uuid4().hex
        body = json.dumps({"code": code, "detail": detail, "request_id": request_id}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            (b"x-request-id", request_id.encode()),
        ]
        for event in (
            h11.Response(status_code=status, headers=headers, reason=HTTPStatus(status).phrase),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        log.info("http request refused", request_id=request_id, status=status, code=code)
        # Done writing; keep reading (and dropping) a while, so the client reads the
        # answer instead of a reset.
        self._dropped = 0
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
