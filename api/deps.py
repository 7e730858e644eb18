"""What every route depends on: the connected services, the caller's access rule, and the
checks of path and query values. Shared by the routers of `api.routes`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Path, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPBearer

from activities.database import Pool
from activities.event_store import EventStore
from activities.messages import MessageTemplates
from activities.review_store import ReviewStore
from api.access import Caller, KeyRing, Rule, allows
from api.client import ReviewClient, TicketClient
from api.errors import ApiError, not_found
from api.middleware import API_KEY_HEADER
from api.schemas import TICKET_ID
from api.settings import ApiSettings
from api.signatures import SeenSignatures
from stores.knowledge import KnowledgeStore
from stores.suggestions import Suggester
from workflows.policy import ServicePolicy

T = TypeVar("T")

# The answer's header that carries an action's id (a ticket's or a review's): sent again
# with that id, the action is applied once.
ACTION_ID_HEADER = "Action-Id"


@dataclass
class Services:
    """Everything a request may touch, connected before the first request."""

    tickets: TicketClient
    pool: Pool
    events: EventStore
    keys: KeyRing
    signatures: SeenSignatures
    partner_secrets: dict[str, str]
    settings: ApiSettings
    templates: MessageTemplates
    policy: ServicePolicy  # the tickets': which channels are live, the time zone
    time_zone: str  # the policy's, for messages whose customer gave none
    reviews: ReviewClient
    review_store: ReviewStore
    knowledge: KnowledgeStore
    suggester: Suggester

    async def call(self, awaitable: Awaitable[T]) -> T:
        """Temporal (or PostgreSQL) within the configured time, else a 503 for the caller."""
        async with asyncio.timeout(self.settings.temporal_timeout.total_seconds()):
            return await awaitable


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


# Declared for the OpenAPI document (the "Authorize" button); RequestContext checks keys.
_api_key = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, scheme_name="ApiKey")
_bearer = HTTPBearer(auto_error=False, scheme_name="Bearer")

_WHAT = {
    Rule.INTAKE: "open tickets",
    Rule.ACT: "act on tickets",
    Rule.PROGRESS: "post progress",
    Rule.CUSTOMER_REPLY: "post customer replies",
    Rule.PARTNER_CALLBACK: "call back as a partner",
    Rule.READ_TICKET: "read tickets",
    Rule.READ_EVENTS: "read ticket events",
    Rule.LIST: "list tickets",
    Rule.METRICS: "read service-health indicators",
    Rule.REVIEW: "lead weekly reviews",
    Rule.KNOWLEDGE_READ: "read the knowledge base",
    Rule.KNOWLEDGE_EDIT: "edit the knowledge base",
    Rule.ERASE: "erase customers' data",
}


def require(rule: Rule) -> Callable[..., Caller]:
    def dependency(
        request: Request,
        _key: Annotated[str | None, Depends(_api_key)],
        _token: Annotated[Any, Depends(_bearer)],
    ) -> Caller:
        caller: Caller | None = request.state.caller
        if caller is None:  # pragma: no cover - RequestContext answered 401 already
            raise ApiError(401, "unauthorized", "an API key is required")
        if not allows(rule, caller):
            raise ApiError(403, "forbidden", f"role {caller.role} may not {_WHAT[rule]}")
        return caller

    return dependency


def known_query(request: Request) -> None:
    """A query parameter the route does not take is refused, not ignored: a typo such as
    `?stauts=new` would otherwise answer every ticket."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    if any("\x00" in f"{key}{value}" for key, value in request.query_params.multi_items()):
        raise ApiError(422, "invalid_request", "query parameters cannot hold a NUL character")
    names = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - names)
    if unknown:
        takes = ", ".join(sorted(names)) or "none"
        raise ApiError(
            422,
            "invalid_request",
            f"unknown query parameter(s) {', '.join(unknown)}; this route takes: {takes}",
        )


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def known(ticket_id: str) -> str:
    """Ids this API never hands out are unknown without asking Temporal."""
    if not TICKET_ID.match(ticket_id):
        raise not_found(ticket_id)
    return ticket_id


def utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except (OverflowError, ValueError):
        raise ApiError(422, "invalid_request", f"{name} is out of range") from None


TicketIdPath = Annotated[
    str, Path(description="As returned by POST /v1/tickets, e.g. ticket-3f2a…", max_length=64)
]
Svc = Annotated[Services, Depends(services)]


def summary_of(action: type[Any]) -> str | None:
    """An action route's summary in the OpenAPI document: its docstring's first paragraph."""
    return action.__doc__.split("\n\n")[0].replace("\n", " ") if action.__doc__ else None
