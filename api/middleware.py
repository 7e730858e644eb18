"""Every request: a request id, the caller's key checked, one access-log line.

Authentication runs here, before FastAPI reads the body, so a caller without a valid key
learns nothing but 401 (not even whether its JSON parsed). Roles are checked per route.

The access log names the route template, status, duration, the key's name and role, and
the request id; never the client's IP, user agent, query string or body, which may hold
personal data.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from fastapi.encoders import jsonable_encoder
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.access import Caller, KeyRing
from api.errors import Problem
from api.prometheus import HttpMetrics
from api.schemas import TICKET_ID

log = structlog.get_logger("api.access")

REQUEST_ID_HEADER = "X-Request-ID"
API_KEY_HEADER = "X-API-Key"
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")
PROTECTED_PREFIX = "/v1/"
# Far above any valid body (a ticket's longest is a few KiB); refused before it is read.
MAX_BODY_BYTES = 256 * 1024


def _limited(receive: Receive) -> Receive:
    """The body as it streams in, refused once it passes the limit: a chunked body has no
    Content-Length to refuse it by, and must not be read whole first."""
    received = 0

    async def limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                raise StarletteHTTPException(
                    413, f"request bodies are limited to {MAX_BODY_BYTES // 1024} KiB"
                )
        return message

    return limited


def _declared_length(headers: Headers) -> int:
    value = headers.get("content-length", "")
    return int(value) if value.isdigit() else 0


def presented_key(headers: Headers) -> str | None:
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get(API_KEY_HEADER) or None


class RequestContext:
    def __init__(self, app: ASGIApp, keys: KeyRing, metrics: HttpMetrics | None = None) -> None:
        self.app = app
        self.keys = keys
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        given = headers.get(REQUEST_ID_HEADER, "")
        request_id = given if _CLIENT_REQUEST_ID.match(given) else uuid.uuid4().hex
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        caller = self.keys.authenticate(presented_key(headers))
        state["caller"] = caller
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                # The server's time until the answer starts: what the bench measures for
                # pages (a browser shows it too, under Timing).
                took = (time.perf_counter() - started) * 1000
                message["headers"] = [
                    *message["headers"],
                    (REQUEST_ID_HEADER.lower().encode(), request_id.encode()),
                    (b"server-timing", f"app;dur={took:.1f}".encode()),
                ]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                if caller is None and scope["path"].startswith(PROTECTED_PREFIX):
                    await self._refuse(
                        scope, receive, send_with_id, request_id, *self._unauthorized(headers)
                    )
                elif _declared_length(headers) > MAX_BODY_BYTES:
                    await self._refuse(
                        scope,
                        receive,
                        send_with_id,
                        request_id,
                        413,
                        "too_large",
                        f"request bodies are limited to {MAX_BODY_BYTES // 1024} KiB",
                        {},
                    )
                else:
                    await self.app(scope, _limited(receive), send_with_id)
            finally:
                self._log(scope, status, started, caller, request_id)

    @staticmethod
    def _unauthorized(headers: Headers) -> tuple[int, str, str, dict[str, str]]:
        sent = presented_key(headers) is not None
        detail = "unknown API key" if sent else "an API key is required"
        return 401, "unauthorized", detail, {"WWW-Authenticate": "Bearer"}

    @staticmethod
    async def _refuse(
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: str,
        status: int,
        code: str,
        detail: str,
        headers: dict[str, str],
    ) -> None:
        problem = Problem(code=code, detail=detail, request_id=request_id)
        response = JSONResponse(jsonable_encoder(problem), status_code=status, headers=headers)
        await response(scope, receive, send)

    def _log(
        self, scope: Scope, status: int, started: float, caller: Caller | None, request_id: str
    ) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        seconds = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.observe(scope["method"], template, status, seconds)
        ticket_id = scope.get("path_params", {}).get("ticket_id")
        if not isinstance(ticket_id, str) or not TICKET_ID.match(ticket_id):
            ticket_id = None  # whatever else a caller put in the path stays out of the log
        log.info(
            "http request",
            request_id=request_id,
            method=scope["method"],
            route=template,
            status=status,
            duration_ms=round(seconds * 1000, 1),
            caller=caller.name if caller else None,
            role=caller.role if caller else None,
            **({"ticket_id": ticket_id} if ticket_id else {}),
        )
