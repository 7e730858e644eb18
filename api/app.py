"""The HTTP API: intake from any channel, one route per action, customer replies, signed
partner callbacks, and reads from the workflow (live) and the read model (lists).

`create_app(services)` builds the FastAPI application around already-connected services,
so the process (`api.server.serve`) and the tests (httpx's ASGI transport) run the same
application. Failures become answers in `api.errors`, never in a route.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.database import pending_migrations
from activities.delivery import words_of
from activities.erasure import is_erased
from activities.indicators import GroupBy, ServiceHealth, service_health
from activities.outbox import Delivery, deliveries
from activities.policy_store import compare as compare_policy
from activities.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER
from activities.thread import Thread, conversation
from api.access import STAFF, Caller, RoleKind, Rule
from api.client import new_action_id
from api.deps import (
    Services,
    Svc,
    TicketIdPath,
    known,
    known_query,
    require,
    utc,
)
from api.erasure import erasures
from api.errors import (
    COMMON_RESPONSES,
    ApiError,
    Problem,
    install_error_handlers,
    not_found,
    translate,
)
from api.knowledge import knowledge, with_script
from api.middleware import RequestContext
from api.prometheus import HttpMetrics, exposition
from api.read_model import Sort, TicketFilter, list_tickets
from api.reviews import review_pages, reviews
from api.schemas import (
    ACTION_REQUESTS,
    Accepted,
    ActionRequest,
    CustomerReplyRequest,
    EventOut,
    EventPage,
    Health,
    IntakeRequest,
    PartnerCallbackRequest,
    TicketOpened,
    TicketPage,
    opened,
    opened_from_read_model,
    to_action,
)
from api.signatures import verify
from workflows import search_attributes as sa
from workflows.contracts import (
    ACTIONS,
    Action,
    CustomerMessage,
    CustomerReply,
    Intake,
    PartnerCallback,
    Respond,
    TicketView,
    action_name,
)
from workflows.primitives import Identifier
from workflows.vocabulary import Category, Priority, TicketStatus, Tier

READY_CHECK_TIMEOUT_S = 2.0
MAX_EVENTS_PAGE = 500
MAX_CALLBACK_BYTES = 64 * 1024

_ACTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    **COMMON_RESPONSES,
    404: {"model": Problem, "description": "no such ticket"},
    409: {"model": Problem, "description": "the ticket refused the action; `detail` says why"},
}

# ---------------------------------------------------------------- intake

intake = APIRouter(tags=["intake"])


@intake.post(
    "/v1/tickets",
    status_code=201,
    response_model=TicketOpened,
    responses={
        **COMMON_RESPONSES,
        200: {"model": TicketOpened, "description": "this key had opened the ticket before"},
        201: {"model": TicketOpened, "description": "a new ticket"},
        410: {"model": Problem, "description": "this key's ticket was erased with its customer"},
    },
)
async def open_ticket(
    body: IntakeRequest,
    request: Request,
    response: Response,
    svc: Svc,
    caller: Annotated[Caller, Depends(require(Rule.INTAKE))],
    idempotency_key: Annotated[Identifier | None, Header(alias="Idempotency-Key")] = None,
) -> TicketOpened:
    """Open a ticket from any channel. The same idempotency key (header or body) always
    yields the same ticket: 201 the first time, 200 after. The caller's IP and user agent
    go into the problem snapshot from the request itself."""
    key = _idempotency_key(idempotency_key, body.idempotency_key)
    user_agent = request.headers.get("user-agent")
    intake_ = Intake(
        idempotency_key=key,
        channel=body.channel,
        customer_id=body.customer_id,
        tier=body.tier,
        subject=body.subject,
        description=body.description,
        context=body.snapshot(
            ip=request.client.host if request.client else None,
            user_agent=user_agent[:500] if user_agent else None,
        ),
        attachments=body.attachments,
        locale=body.locale,
        time_zone=body.time_zone,
    )
    # A key PostgreSQL knows opened its ticket before, perhaps so long ago that Temporal
    # no longer retains the workflow: starting it again would only make a run that ends
    # at once as a duplicate, and the caller would be told "created".
    earlier = await svc.call(svc.events.ticket_for_intake_key(key))
    if earlier is None:
        ticket = await svc.call(svc.tickets.open(intake_))
        ticket_id, created = ticket.ticket_id, ticket.created
    elif await svc.call(is_erased(svc.pool, earlier)):
        raise ApiError(
            410, "ticket_erased", "this key's ticket was erased with its customer's data"
        )
    else:
        ticket_id, created = earlier, False
    response.status_code = 201 if created else 200
    try:
        return opened(await svc.call(svc.tickets.view(ticket_id)), created)
    except RPCError as error:
        if created or error.status is not RPCStatusCode.NOT_FOUND:
            raise
    row = await svc.call(svc.events.ticket(ticket_id))
    if row is None:
        raise not_found(ticket_id)
    return opened_from_read_model(row)


def _idempotency_key(header: str | None, body: str | None) -> str:
    header = header.strip() if header else None
    if header and body and header != body:
        raise ApiError(
            422, "invalid_request", "Idempotency-Key header and body idempotency_key differ"
        )
    key = header or body
    if not key:
        raise ApiError(
            422,
            "invalid_request",
            "an idempotency key is required: Idempotency-Key header or body idempotency_key",
        )
    return key


# ---------------------------------------------------------------- actions

actions = APIRouter(tags=["actions"], responses=_ACTION_RESPONSES)
ACTION_ID_HEADER = "Action-Id"


def _action_route(action: type[Action]) -> Callable[..., Awaitable[TicketView]]:
    """The route of one action: its body comes from the contract, its rule from the
    contract's ClassVars (workflows.contracts.ACTIONS)."""

    async def act(
        ticket_id: TicketIdPath,
        body: ActionRequest,
        response: Response,
        svc: Svc,
        caller: Caller,
    ) -> TicketView:
        if body.actor_id is not None and caller.kind not in STAFF:
            raise ApiError(
                403,
                "forbidden",
                f"role {caller.role} acts as itself; only agent and operator keys name the "
                "person acting (actor_id)",
            )
        department = getattr(body, "department", None)
        if caller.kind is RoleKind.DEPARTMENT and department != caller.scope:
            raise ApiError(403, "forbidden", f"role {caller.role} may act only for {caller.scope}")
        action_id = body.action_id or new_action_id()
        sent = to_action(action, body, caller.actor(body.actor_id), action_id)
        if isinstance(sent, Respond):
            sent = await with_script(svc, known(ticket_id), sent)
        response.headers[ACTION_ID_HEADER] = action_id
        try:
            return await svc.call(svc.tickets.act(known(ticket_id), sent))
        except Exception as error:
            mapped = translate(error)
            if mapped is None or mapped.status != 503:
                raise
            # The update may still be applied later: the caller resends this id, and the
            # ticket applies it once.
            raise ApiError(
                503,
                mapped.code,
                f"{mapped.detail}; send the action again with action_id {action_id}",
                {**mapped.headers, ACTION_ID_HEADER: action_id},
            ) from error

    # FastAPI reads the body model and the access rule from the annotations; they differ
    # per action, so this one function declares those of the action it serves.
    rule = Rule.PROGRESS if action.for_departments else Rule.ACT
    act.__annotations__["body"] = ACTION_REQUESTS[action]
    act.__annotations__["caller"] = Annotated[Caller, Depends(require(rule))]
    return act


for _action in ACTIONS:
    actions.add_api_route(
        f"/v1/tickets/{{ticket_id}}/{_action.route}",
        _action_route(_action),
        methods=["POST"],
        name=action_name(_action),
        summary=_action.__doc__.split("\n\n")[0].replace("\n", " ") if _action.__doc__ else None,
        description=(
            f"The `{action_name(_action)}` update of the ticket. Answers the ticket's view "
            f"and the `{ACTION_ID_HEADER}` header: resend with that `action_id` after a "
            "timeout or a 503, and the action is applied once."
        ),
        response_model=TicketView,
    )


# ---------------------------------------------------------------- customers and partners

inbound = APIRouter(tags=["customers and partners"], responses=_ACTION_RESPONSES)


@inbound.post("/v1/tickets/{ticket_id}/customer-replies", status_code=202)
async def customer_reply(
    ticket_id: TicketIdPath,
    body: CustomerReplyRequest,
    svc: Svc,
    caller: Annotated[Caller, Depends(require(Rule.CUSTOMER_REPLY))],
) -> Accepted:
    """What the customer answered on their channel: a message, solved / not solved (which
    reopens), CSAT 1-5 or NPS 0-10. Accepted in order; a resent reply_id counts once.
    A closed ticket still takes replies during its feedback window (the ratings it asked
    for; anything else is kept without reopening); after it, 409 ticket_closed."""
    reply = CustomerReply.model_validate(body.model_dump())
    await svc.call(svc.tickets.customer_reply(known(ticket_id), reply))
    return Accepted(ticket_id=ticket_id)


_CALLBACK_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": PartnerCallbackRequest.model_json_schema()}},
    }
}


@inbound.post(
    "/v1/partners/{partner}/callbacks",
    status_code=202,
    openapi_extra=_CALLBACK_BODY,
    responses={413: {"model": Problem, "description": "body over 64 KiB"}},
)
async def partner_callback(
    partner: Annotated[str, Path(max_length=64)],
    request: Request,
    svc: Svc,
    caller: Annotated[Caller, Depends(require(Rule.PARTNER_CALLBACK))],
    timestamp: Annotated[str | None, Header(alias=TIMESTAMP_HEADER, max_length=32)] = None,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER, max_length=128)] = None,
) -> Accepted:
    """A partner's answer on an engagement. Signed: `X-Ticketflow-Signature: sha256=` +
    hex HMAC-SHA256 of `<X-Ticketflow-Timestamp>.<raw body>` with the partner's secret;
    older than 5 minutes or seen before is refused. A partner key calls back only as
    itself, and only on tickets that engaged it."""
    if caller.scope != partner:
        raise ApiError(403, "forbidden", f"role {caller.role} may call back only as {caller.scope}")
    secret = svc.partner_secrets.get(partner)
    if secret is None:
        raise ApiError(403, "forbidden", f"no signing secret is configured for {partner}")
    raw = await request.body()
    if len(raw) > MAX_CALLBACK_BYTES:
        raise ApiError(413, "too_large", "callback bodies are limited to 64 KiB")
    digest = verify(secret, timestamp, signature, raw, svc.settings.signature_tolerance)
    body = PartnerCallbackRequest.model_validate_json(raw)
    ticket_id = known(body.ticket_id)
    # A refusal below releases the signature again: only a delivered callback uses it up.
    async with svc.signatures.claim(partner, digest):
        state = await svc.call(svc.tickets.state(ticket_id))
        if state.status is TicketStatus.CLOSED:
            raise ApiError(409, "ticket_closed", "the ticket is closed; the answer was not taken")
        engagement = state.partners.get(partner)
        if engagement is None:
            raise ApiError(403, "forbidden", f"{partner} holds no engagement on this ticket")
        if engagement.answered_at is not None:
            raise ApiError(409, "already_answered", f"{partner} already answered on this ticket")
        callback = PartnerCallback(
            callback_id=body.callback_id, partner=partner, answer=body.answer, final=body.final
        )
        await svc.call(svc.tickets.partner_callback(ticket_id, callback))
    return Accepted(ticket_id=ticket_id)


# ---------------------------------------------------------------- reads

reads = APIRouter(tags=["reads"], responses=_ACTION_RESPONSES)
pages = APIRouter()
_PAGES = resources.files("api").joinpath("pages")


class DeliveryPage(BaseModel):
    ticket_id: str
    deliveries: list[Delivery]


def _erased() -> ApiError:
    return ApiError(
        410,
        "ticket_erased",
        "this ticket's customer data was erased: its events and thread remain, "
        "without what the customer said",
    )


async def _visible_view(svc: Services, ticket_id: str, caller: Caller) -> TicketView:
    try:
        view = await svc.call(svc.tickets.view(known(ticket_id)))
    except RPCError as error:
        # Erasure deletes the ticket's histories; the store still knows the ticket.
        if error.status is RPCStatusCode.NOT_FOUND and await svc.call(
            is_erased(svc.pool, ticket_id)
        ):
            raise _erased() from None
        raise
    # Only a closed ticket can be erased; its history is deleted in the background.
    if view.status is TicketStatus.CLOSED and await svc.call(is_erased(svc.pool, ticket_id)):
        raise _erased()
    if caller.kind is RoleKind.DEPARTMENT and caller.scope not in view.departments:
        raise ApiError(403, "forbidden", f"{caller.scope} holds no work order on this ticket")
    return view


@reads.get(
    "/v1/tickets/{ticket_id}",
    responses={410: {"model": Problem, "description": "the ticket's customer data was erased"}},
)
async def show_ticket(
    ticket_id: TicketIdPath,
    svc: Svc,
    caller: Annotated[Caller, Depends(require(Rule.READ_TICKET))],
) -> TicketView:
    """The live state, from the ticket itself: status, deadlines, what it waits for."""
    return await _visible_view(svc, ticket_id, caller)


@reads.get("/v1/tickets/{ticket_id}/thread")
async def ticket_thread(
    ticket_id: TicketIdPath,
    svc: Svc,
    caller: Annotated[Caller, Depends(require(Rule.READ_EVENTS))],
) -> Thread:
    """The conversation in order, from the event store: who said what, when, through
    which channel, and whether the customer reads it or it stays internal."""
    ticket_id = known(ticket_id)
    if caller.kind is RoleKind.DEPARTMENT:
        await _visible_view(svc, ticket_id, caller)
    events, messages = await svc.call(svc.events.thread(ticket_id))
    if not events:
        # Not stored yet (just opened) or not a ticket at all: Temporal knows which.
        await svc.call(svc.tickets.handle(ticket_id).describe())
    erased = await svc.call(is_erased(svc.pool, ticket_id))

    def render(message: CustomerMessage) -> str:
        return svc.templates.render(message, svc.time_zone).text

    entries = conversation(events, messages, render, erased=erased)
    return Thread(ticket_id=ticket_id, entries=entries, erased=erased)


@reads.get("/v1/tickets/{ticket_id}/deliveries")
async def ticket_deliveries(
    ticket_id: TicketIdPath,
    svc: Svc,
    caller: Annotated[Caller, Depends(require(Rule.READ_EVENTS))],
) -> DeliveryPage:
    """What the customer and each department, partner and supervisor received, and when;
    what is still on its way (as it will be said), and what failed."""
    ticket_id = known(ticket_id)
    if caller.kind is RoleKind.DEPARTMENT:
        await _visible_view(svc, ticket_id, caller)
    rows = await svc.call(deliveries(svc.pool, ticket_id))
    if not rows:
        await svc.call(svc.tickets.handle(ticket_id).describe())
    return DeliveryPage(ticket_id=ticket_id, deliveries=[_as_said(svc, row) for row in rows])


def _as_said(svc: Services, row: Delivery) -> Delivery:
    """A row still on its way, with the words (and locale) it will be delivered with."""
    if row.text is not None:
        return row
    locale, text = words_of(row.key, row.kind, row.payload, svc.templates, svc.policy)
    return row.model_copy(update={"text": text, "locale": locale})


@pages.get("/tickets/{ticket_id}/deliveries", include_in_schema=False)
async def deliveries_page(ticket_id: TicketIdPath) -> HTMLResponse:
    """The deliveries of one ticket, for people: the page asks for an API key and reads
    `GET /v1/tickets/{id}/deliveries` with it."""
    return HTMLResponse(_PAGES.joinpath("deliveries.html").read_text("utf-8"))


@pages.get("/dashboard", include_in_schema=False)
async def dashboard_page() -> HTMLResponse:
    """Service health for managers: charts of `GET /v1/metrics`, drawn in the page (SVG),
    nothing loaded from elsewhere. The page asks for a manager's key."""
    return HTMLResponse(_PAGES.joinpath("dashboard.html").read_text("utf-8"))


@reads.get("/v1/tickets/{ticket_id}/events")
async def ticket_events(
    ticket_id: TicketIdPath,
    svc: Svc,
    caller: Annotated[Caller, Depends(require(Rule.READ_EVENTS))],
    after_seq: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS_PAGE)] = 100,
) -> EventPage:
    """The ticket's domain events from the event store, in order."""
    ticket_id = known(ticket_id)
    if caller.kind is RoleKind.DEPARTMENT:
        await _visible_view(svc, ticket_id, caller)
    stored = await svc.call(svc.events.events(ticket_id, after_seq))
    if not stored and after_seq == 0:
        # Not stored yet (just opened) or not a ticket at all: Temporal knows which.
        await svc.call(svc.tickets.handle(ticket_id).describe())
    page = stored[:limit]
    return EventPage(
        ticket_id=ticket_id,
        events=[
            EventOut(
                seq=e.seq,
                type=e.type.value,
                occurred_at=e.occurred_at,
                actor_id=e.actor.id,
                actor_role=e.actor.role.value,
                data=e.data,
            )
            for e in page
        ],
        next_after_seq=page[-1].seq if len(stored) > limit else None,
        erased=await svc.call(is_erased(svc.pool, ticket_id)),
    )


@reads.get("/v1/tickets")
async def search_tickets(
    svc: Svc,
    caller: Annotated[Caller, Depends(require(Rule.LIST))],
    status: Annotated[list[TicketStatus] | None, Query()] = None,
    priority: Annotated[list[Priority] | None, Query()] = None,
    category: Annotated[list[Category] | None, Query()] = None,
    tier: Annotated[list[Tier] | None, Query()] = None,
    department: Annotated[str | None, Query(max_length=128)] = None,
    assignee: Annotated[str | None, Query(max_length=128)] = None,
    unassigned: Annotated[bool | None, Query(description="true: nobody assigned yet")] = None,
    breached: Annotated[bool | None, Query(description="SLA breached")] = None,
    paused: Annotated[
        bool | None, Query(description="SLA clock paused (waiting on the customer)")
    ] = None,
    opened_after: Annotated[datetime | None, Query(description="inclusive")] = None,
    opened_before: Annotated[datetime | None, Query(description="exclusive")] = None,
    sort: Annotated[
        Sort,
        Query(description="attention: SLA due soonest (overdue first), then priority; newest"),
    ] = Sort.ATTENTION,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> TicketPage:
    """Tickets from the read model, what needs attention first. Repeat a filter for "any
    of" (`?status=new&status=in_progress`); follow `next_cursor` for the next page. A
    department key sees only tickets that hold its work orders."""
    if caller.kind is RoleKind.DEPARTMENT:
        if department not in (None, caller.scope):
            raise ApiError(403, "forbidden", f"role {caller.role} lists only its own tickets")
        department = caller.scope
    filters = TicketFilter(
        status=[s.value for s in status or []],
        priority=[p.value for p in priority or []],
        category=[c.value for c in category or []],
        tier=[t.value for t in tier or []],
        department=department,
        assignee=assignee,
        unassigned=unassigned,
        breached=breached,
        paused=paused,
        opened_after=utc(opened_after, "opened_after"),
        opened_before=utc(opened_before, "opened_before"),
    )
    return await svc.call(list_tickets(svc.pool, filters, limit, cursor, sort))


# ---------------------------------------------------------------- service health

metrics = APIRouter(tags=["service health"], responses=COMMON_RESPONSES)
MAX_METRICS_PERIOD = timedelta(days=366)


@metrics.get("/v1/metrics")
async def service_health_indicators(
    svc: Svc,
    _caller: Annotated[Caller, Depends(require(Rule.METRICS))],
    start: Annotated[datetime, Query(alias="from", description="inclusive")],
    end: Annotated[datetime, Query(alias="to", description="exclusive")],
    group_by: Annotated[GroupBy | None, Query()] = None,
) -> ServiceHealth:
    """SPEC §5's indicators for `[from, to)`, each with its n (../shared/METRICS.md):
    volumes, first-response time (live and async), transfers, resolution and first-contact
    resolution, reopens, SLA attainment per priority, backlog at `to`, CSAT, NPS, and the
    response time of each department and partner."""
    start_utc, end_utc = utc(start, "from"), utc(end, "to")
    assert start_utc is not None and end_utc is not None
    if not start_utc < end_utc <= start_utc + MAX_METRICS_PERIOD:
        raise ApiError(422, "invalid_request", "from must be before to, at most 366 days apart")
    return await svc.call(service_health(svc.pool, svc.policy, start_utc, end_utc, group_by))


class Surge(BaseModel):
    investigation_id: str
    dimension: str
    value: str
    # What it looks into: its topic, and its category (or the one its topic's rise explains).
    category: str | None
    topic: str | None
    open: bool
    started_at: datetime


@metrics.get("/v1/surges")
async def surges(
    svc: Svc, _caller: Annotated[Caller, Depends(require(Rule.METRICS))]
) -> list[Surge]:
    """Surge investigations of this task queue (SPEC §5's warning), open ones first."""
    query = (
        f"WorkflowType = 'SurgeInvestigationWorkflow' AND TaskQueue = '{svc.tickets.task_queue}'"
    )

    async def found() -> list[Surge]:
        listed: list[Surge] = []
        async for execution in svc.tickets.temporal.list_workflows(query, limit=200):
            _, dimension, rest = execution.id.split("-", 2)
            attributes = execution.typed_search_attributes
            listed.append(
                Surge(
                    investigation_id=execution.id,
                    dimension=dimension,
                    value=rest.rsplit("-", 1)[0],
                    category=attributes.get(sa.TICKET_CATEGORY),
                    topic=attributes.get(sa.TICKET_TOPIC),
                    open=execution.status is WorkflowExecutionStatus.RUNNING,
                    started_at=execution.start_time,
                )
            )
        return sorted(listed, key=lambda surge: (not surge.open, surge.investigation_id))

    return await svc.call(found())


@metrics.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def prometheus_metrics(
    request: Request, svc: Svc, _caller: Annotated[Caller, Depends(require(Rule.METRICS))]
) -> PlainTextResponse:
    """The indicators of the last `metrics_window` (24 h) and the API's HTTP requests and
    latencies, in Prometheus' text format: scrape with a manager's key (`authorization` in
    the scrape config)."""
    end = datetime.now(UTC)
    health = await svc.call(
        service_health(svc.pool, svc.policy, end - svc.settings.metrics_window, end)
    )
    http: HttpMetrics = request.app.state.http_metrics
    body = exposition(health) + http.exposition()
    return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)


# ---------------------------------------------------------------- health

health = APIRouter(tags=["health"])


@health.get("/healthz")
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@health.get("/readyz", responses={503: {"model": Health, "description": "a dependency is down"}})
async def readyz(svc: Svc, response: Response) -> Health:
    """Temporal and PostgreSQL both answer, and the database has every migration (the
    API never migrates: a worker or `ticketflow migrate` does, before the API serves)."""
    checks = dict(
        zip(
            ("temporal", "postgres", "schema"),
            await asyncio.gather(
                _check(_temporal_ok(svc)),
                _check(svc.pool.fetchval("SELECT 1")),
                _schema(svc),
            ),
            strict=True,
        )
    )
    ready = all(result == "ok" for result in checks.values())
    if checks["schema"] == "ok":
        # Reported, not a reason to stop serving: a policy rollout passes through it.
        checks["policy"] = await _policy(svc)
    if not ready:
        response.status_code = 503
        response.headers["Retry-After"] = "5"
    return Health(status="ok" if ready else "unavailable", checks=checks)


async def _schema(svc: Services) -> str:
    try:
        async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
            missing = await pending_migrations(svc.pool)
    except Exception as error:
        return f"unavailable: {type(error).__name__}"
    if missing:
        return (
            f"migrations missing: {', '.join(missing)} (start a worker or run `ticketflow migrate`)"
        )
    return "ok"


async def _policy(svc: Services) -> str:
    try:
        async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
            return await compare_policy(svc.pool, svc.tickets.task_queue, svc.policy)
    except Exception as error:
        return f"unavailable: {type(error).__name__}"


async def _temporal_ok(svc: Services) -> None:
    await svc.tickets.temporal.service_client.check_health(
        timeout=timedelta(seconds=READY_CHECK_TIMEOUT_S)
    )


async def _check(awaitable: Awaitable[object]) -> str:
    try:
        async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
            await awaitable
    except Exception as error:
        return f"unavailable: {type(error).__name__}"
    return "ok"


# ---------------------------------------------------------------- the application

DESCRIPTION = """
Customer-service tickets as durable Temporal workflows.

Authenticate with `Authorization: Bearer <key>` (or `X-API-Key: <key>`). Roles: `backend`,
`agent`, `operator`, `manager`, `department:<name>`, `partner:<name>`. Errors share one shape:
`{"code", "detail", "request_id"}`; 503 answers carry `Retry-After`.
"""


def _operation_id(route: APIRoute) -> str:
    return route.name


def create_app(svc: Services) -> FastAPI:
    # /docs from assets shipped in the package: no CDN (unreachable offline, and unreliable
    # from mainland China).
    app = FastAPIOffline(
        title="ticketflow",
        version="1",
        description=DESCRIPTION,
        generate_unique_id_function=_operation_id,
        dependencies=[Depends(known_query)],
    )
    app.state.services = svc
    install_error_handlers(app)
    routers = (
        intake,
        actions,
        inbound,
        reads,
        knowledge,
        metrics,
        reviews,
        erasures,
        pages,
        review_pages,
    )
    for router in (*routers, health):
        app.include_router(router)
    app.state.http_metrics = HttpMetrics()
    app.add_middleware(RequestContext, keys=svc.keys, metrics=app.state.http_metrics)
    return app
