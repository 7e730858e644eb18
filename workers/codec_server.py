"""`ticketflow codec-server`: decrypted payloads for operators, in the Temporal UI and CLI.

The Temporal server only holds ciphertext (workers/codec.py). The UI and
`temporal workflow show --codec-endpoint …` send what they display here, to `/decode`, and
what an operator types (a signal's input) to `/encode`. Both speak the proto3 JSON of
`temporal.api.common.v1.Payloads`, the protocol every Temporal codec server shares.

Who may call it: the API's operator and manager keys (`Authorization: Bearer <key>`, as
`temporal --codec-auth` sends it). A browser page cannot add that header to the UI's
calls, so the same key may instead be the first segment of the path
(`--ui-codec-endpoint http://host:8089/<key>`): `make dev` configures its UI that way on
localhost. In production, put the codec server behind the same single sign-on proxy as the
UI. Browsers reach it only from `codec.server.cors_origins`, the UI's origins.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from api.access import KeyRing, RoleKind
from api.server import serve_app
from workers.codec import CodecError, CodecServerSettings

log = structlog.get_logger(__name__)

ALLOWED_ROLES = frozenset({RoleKind.OPERATOR, RoleKind.MANAGER})
MAX_BODY_BYTES = 4 * 1024 * 1024  # a history page's payloads; Temporal's own cap is 2 MiB each


def create_codec_app(codec: PayloadCodec, keys: KeyRing, settings: CodecServerSettings) -> FastAPI:
    app = FastAPI(title="ticketflow codec server", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=True,
        allow_methods=["POST"],
        allow_headers=["Authorization", "Content-Type", "X-Namespace"],
    )

    def authorise(key: str | None) -> None:
        caller = keys.authenticate(key)
        if caller is None:
            raise HTTPException(401, "a valid operator or manager API key is required")
        if caller.kind not in ALLOWED_ROLES:
            raise HTTPException(403, f"{caller.kind.value} keys may not read payloads")

    async def transform(
        request: Request, key: str | None, step: Callable[[list[Payloads]], Awaitable[object]]
    ) -> Response:
        authorise(key)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, f"at most {MAX_BODY_BYTES} bytes of payloads per request")
        payloads = Payloads()
        try:
            json_format.Parse(body, payloads)
        except (json_format.ParseError, DecodeError, UnicodeDecodeError) as error:
            raise HTTPException(
                400, f"expected temporal.api.common.v1.Payloads JSON: {error}"
            ) from None
        result = Payloads()
        try:
            result.payloads.extend(await step([payloads]))  # type: ignore[arg-type]
        except CodecError as error:
            raise HTTPException(422, str(error)) from None
        return Response(json_format.MessageToJson(result), media_type="application/json")

    def bearer(request: Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    async def encode(payloads: list[Payloads]) -> object:
        return await codec.encode(payloads[0].payloads)

    async def decode(payloads: list[Payloads]) -> object:
        return await codec.decode(payloads[0].payloads)

    @app.post("/encode")
    async def encode_bearer(request: Request) -> Response:
        return await transform(request, bearer(request), encode)

    @app.post("/decode")
    async def decode_bearer(request: Request) -> Response:
        return await transform(request, bearer(request), decode)

    @app.post("/{key}/encode")
    async def encode_path(key: str, request: Request) -> Response:
        return await transform(request, bearer(request) or key, encode)

    @app.post("/{key}/decode")
    async def decode_path(key: str, request: Request) -> Response:
        return await transform(request, bearer(request) or key, decode)

    return app


async def serve_codec(
    codec: PayloadCodec, keys: KeyRing, settings: CodecServerSettings, stop: asyncio.Event
) -> None:
    """Serve until `stop` is set."""
    if not keys:
        log.warning("codec server without API keys: every request will be refused (401)")
    await serve_app(create_codec_app(codec, keys, settings), settings.host, settings.port, stop)
