"""One shape for every error, and the layer that maps failures to status codes.

    {"code": "action_rejected", "detail": "ticket is already resolved …", "request_id": "…"}

- 401 no or unknown key, bad signature; 403 wrong role or scope;
- 404 unknown ticket; 409 the ticket refused the action, is closed, or a replayed callback;
- 410 the ticket's customer data was erased (`ticket_erased`);
- 413 a body past its bound; 422 malformed request (`detail` lists the problems; a body
  that is not UTF-8 or JSON, or nests too deeply, too);
- 431 request headers past their bound (answered by the server, api.http_bounds);
- 503 Temporal or PostgreSQL unreachable or too slow, with `Retry-After` (an action sent
  again with the same `action_id` is applied once).

Routes raise domain errors (ActionRejected, RPCError, asyncpg errors); nothing in a route
translates them by hand, so every route answers the same way for the same failure.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import (
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError, RPCStatusCode

from api.client import ActionRejected, ActionUnconfirmed

log = structlog.get_logger(__name__)

RETRY_AFTER_SECONDS = 5


class Problem(BaseModel):
    """Every error answer."""

    code: str
    detail: str | list[dict[str, Any]]
    request_id: str | None = None


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}


def unavailable(detail: str) -> ApiError:
    return ApiError(503, "unavailable", detail, {"Retry-After": str(RETRY_AFTER_SECONDS)})


def not_found(ticket_id: str) -> ApiError:
    return ApiError(404, "ticket_not_found", f"no ticket {ticket_id}")


# Documented on every route that reaches Temporal or PostgreSQL.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no API key, or an unknown one"},
    403: {"model": Problem, "description": "the key's role may not do this"},
    422: {"model": Problem, "description": "malformed request"},
    503: {
        "model": Problem,
        "description": "Temporal or PostgreSQL unreachable; retry after `Retry-After` seconds",
    },
}

# Routes on one ticket: it may not exist, and it may refuse what is asked.
TICKET_RESPONSES: dict[int | str, dict[str, Any]] = {
    **COMMON_RESPONSES,
    404: {"model": Problem, "description": "no such ticket"},
    409: {"model": Problem, "description": "the ticket refused the action; `detail` says why"},
}


def problem(
    request: Request,
    status: int,
    code: str,
    detail: str | list[dict[str, Any]],
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(code=code, detail=detail, request_id=request_id_of(request))
    return JSONResponse(
        jsonable_encoder(body, exclude_none=True), status_code=status, headers=headers
    )


def request_id_of(request: Request) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


def translate(error: BaseException) -> ApiError | None:
    """The API's answer to a failure from Temporal, PostgreSQL or the client; None for
    anything unexpected (a bug, answered 500 by the last-resort handler)."""
    match error:
        case ApiError():
            return error
        case ActionRejected():
            return ApiError(409, "action_rejected", str(error))
        case ActionUnconfirmed():
            return unavailable(str(error))
        case WorkflowUpdateRPCTimeoutOrCancelledError():
            return unavailable("Temporal did not confirm the action in time")
        case WorkflowUpdateFailedError():
            cause = error.cause
            return ApiError(409, "action_rejected", str(cause or error))
        case RPCError():
            return _from_rpc(error)
        case WorkflowQueryFailedError():
            return unavailable(f"the ticket could not answer: {error}")
        case TimeoutError() | asyncio.TimeoutError():
            return unavailable("Temporal or PostgreSQL did not answer in time")
        case asyncpg.UndefinedTableError() | asyncpg.UndefinedColumnError():
            # The API never migrates (the worker, or `ticketflow migrate`, does): until
            # then the database cannot serve it, which /readyz says too.
            return unavailable(
                "the ticket database is not migrated yet: start a worker or run "
                "`ticketflow migrate`"
            )
        case asyncpg.DataError():
            # Only a caller's value (a filter, a cursor) reaches a query from the API.
            return ApiError(422, "invalid_request", "a value is out of range or malformed")
        case (
            asyncpg.PostgresConnectionError()
            | asyncpg.InterfaceError()
            | asyncpg.CannotConnectNowError()
            | asyncpg.TooManyConnectionsError()
            | ConnectionError()
        ):
            return unavailable("the ticket database is unreachable")
        case RuntimeError() if "client connect" in str(error).lower():
            # The SDK's lazy client reports an unreachable server as a RuntimeError.
            return unavailable("Temporal is unreachable")
    return None


def _from_rpc(error: RPCError) -> ApiError:
    message = error.message or str(error)
    if error.status is RPCStatusCode.NOT_FOUND:
        if "already completed" in message:
            return ApiError(409, "ticket_closed", "the ticket is closed")
        if "namespace" in message.lower():
            return unavailable(f"Temporal is misconfigured: {message}")
        return ApiError(404, "ticket_not_found", "no such ticket")
    if error.status is RPCStatusCode.ALREADY_EXISTS:
        return ApiError(409, "conflict", message)
    if error.status is RPCStatusCode.INVALID_ARGUMENT:
        return ApiError(422, "invalid_request", message)
    # UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, UNAUTHENTICATED (our own
    # credentials), INTERNAL, …: nothing the caller did; trying again later may work.
    return unavailable(f"Temporal: {error.status.name if error.status else 'error'}")


def _validation_items(errors: Any) -> list[dict[str, Any]]:
    """loc, msg and type of each problem; the input itself is not echoed back."""
    return [
        {
            "loc": list(item.get("loc", ())),
            "msg": str(item.get("msg", "")).removeprefix("Value error, "),
            "type": item.get("type"),
        }
        for item in errors
    ]


def _unreadable(error: StarletteHTTPException) -> str:
    match error.__cause__:
        case UnicodeDecodeError():
            return "the body is not valid UTF-8"
        case RecursionError():
            return "the body's JSON nests too deeply"
    return str(error.detail)


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, error: Exception) -> JSONResponse:
        mapped = translate(error)
        if mapped is None:
            return await unexpected(request, error)
        if mapped.status == 503:
            log.warning("dependency unavailable", error=type(error).__name__, detail=mapped.detail)
        return problem(request, mapped.status, mapped.code, mapped.detail, mapped.headers)

    async def validation_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError | ValidationError)
        return problem(request, 422, "invalid_request", _validation_items(error.errors()))

    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        if error.status_code == 400:
            # A body FastAPI could not read (not UTF-8, JSON nested past the parser's
            # depth): malformed, like any other body that does not parse.
            return problem(request, 422, "invalid_request", _unreadable(error))
        codes = {
            404: "not_found",
            405: "method_not_allowed",
            401: "unauthorized",
            413: "too_large",
        }
        return problem(
            request,
            error.status_code,
            codes.get(error.status_code, "http_error"),
            str(error.detail),
            dict(error.headers or {}),
        )

    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.error("unhandled error", error=type(error).__name__, exc_info=error)
        return problem(request, 500, "internal_error", "unexpected error; quote the request id")

    for kind in (
        ApiError,
        ActionRejected,
        ActionUnconfirmed,
        WorkflowUpdateFailedError,
        WorkflowUpdateRPCTimeoutOrCancelledError,
        WorkflowQueryFailedError,
        RPCError,
        TimeoutError,
        asyncpg.DataError,
        asyncpg.UndefinedTableError,
        asyncpg.UndefinedColumnError,
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.TooManyConnectionsError,
        ConnectionError,
        RuntimeError,
    ):
        app.add_exception_handler(kind, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
