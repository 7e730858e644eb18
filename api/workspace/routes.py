"""The workspace over HTTP, at /app: signing in and out, the queue, the ticket page, the
actions' forms, typing, and the agent's language and time zone (the live stream is
`stream.py`; what every route stands on, `web.py`).

Pages are drawn on the server (Jinja2) and kept current by a small script
(`static/workspace.js`) that listens to `/app/live` and reads the changed part again.
Every form posts with the session's CSRF token; the session cookie is HttpOnly and
SameSite=Strict and holds no key.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from api.access import Caller, RoleKind
from api.deps import Services, TicketIdPath, known
from api.errors import ApiError
from api.read_model import TicketFilter
from api.routes.actions import perform
from api.routes.knowledge import script_for, script_words
from api.schemas import ACTION_REQUESTS
from api.workspace.forms import COMPOSER, ActionForm, FormError, form_body
from api.workspace.labels import LABELS
from api.workspace.queue import VIEWS, read_queue, view_named, views_for
from api.workspace.record import record
from api.workspace.sessions import COOKIE, CSRF_FIELD
from api.workspace.stream import stream
from api.workspace.ticket_page import read_ticket_page
from api.workspace.web import (
    Agent,
    AgentDep,
    Desk,
    DeskDep,
    NotSignedIn,
    PostingAgent,
    draw,
    error_page,
    form_fields,
    same_origin,
    words_for,
)
from workflows.contracts import TicketView
from workflows.vocabulary import Category, Channel, Priority, Tier, Topic

workspace = APIRouter(prefix="/app", include_in_schema=False)

SIGNIN_COOKIE = "tf_signin"
_STATIC = resources.files("api.workspace").joinpath("static")
_CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def install(app: FastAPI, svc: Services) -> None:
    app.state.desk = Desk.build(svc)
    app.include_router(workspace)
    app.include_router(stream)
    app.include_router(record)

    async def not_signed_in(request: Request, _error: Exception) -> Response:
        wants_page = request.method == "GET" and "text/html" in request.headers.get("accept", "")
        if wants_page:
            return RedirectResponse("/app/signin", status_code=303)
        return JSONResponse(
            {"code": "unauthorized", "detail": "sign in to the workspace first"}, status_code=401
        )

    app.add_exception_handler(NotSignedIn, not_signed_in)


# ---------------------------------------------------------------- signing in and out


@workspace.get("")
async def app_root() -> RedirectResponse:
    return RedirectResponse("/app/", status_code=307)


@workspace.get("/signin")
async def signin_page(request: Request, found: DeskDep) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    me = None
    words = words_for(request, found, None)
    response = draw(found, "signin.html", me, signin_token=token, refused=False, lang=words.locale)
    _cookie(response, found, SIGNIN_COOKIE, token, request, path="/app/signin")
    return response


@workspace.post("/signin")
async def sign_in(request: Request, found: DeskDep) -> Response:
    same_origin(request)
    form = await form_fields(request)
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    sent = form.get(CSRF_FIELD, [""])[0]
    if not expected or not secrets.compare_digest(sent.encode(), expected.encode()):
        raise ApiError(403, "csrf", "the sign-in form is out of date: reload it")
    opened = await found.svc.call(found.sessions.open(form.get("key", [""])[0].strip()))
    if opened is None:
        words = words_for(request, found, None)
        return draw(
            found, "signin.html", None, 401, signin_token=expected, refused=True, lang=words.locale
        )
    token, _ = opened
    response = RedirectResponse("/app/", status_code=303)
    _cookie(response, found, COOKIE, token, request, path="/app")
    response.delete_cookie(SIGNIN_COOKIE, path="/app/signin")
    return response


@workspace.post("/signout")
async def sign_out(me: PostingAgent, found: DeskDep) -> Response:
    await found.svc.call(found.sessions.close(me.session))
    response = RedirectResponse("/app/signin", status_code=303)
    response.delete_cookie(COOKIE, path="/app")
    return response


def _cookie(
    response: Response, found: Desk, name: str, value: str, request: Request, path: str
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(found.settings.session_ttl.total_seconds()),
        path=path,
        httponly=True,
        samesite="strict",
        secure=found.settings.secure_cookies or request.url.scheme == "https",
    )


@workspace.post("/preferences")
async def preferences(me: PostingAgent, found: DeskDep, request: Request) -> Response:
    form = await form_fields(request)
    locale = form.get("locale", [""])[0]
    zone = form.get("time_zone", [""])[0].strip()
    if locale not in found.settings.locales:
        raise ApiError(422, "invalid_request", f"locale must be one of {found.settings.locales}")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(422, "invalid_request", f"unknown time zone {zone!r}") from None
    await found.svc.pool.execute(
        "INSERT INTO workspace_preferences (staff_id, locale, time_zone) VALUES ($1, $2, $3)"
        " ON CONFLICT (staff_id) DO UPDATE SET locale = EXCLUDED.locale,"
        " time_zone = EXCLUDED.time_zone, updated_at = now()",
        me.caller.name,
        locale,
        zone,
    )
    back = form.get("next", ["/app/"])[0]
    return RedirectResponse(back if back.startswith("/app/") else "/app/", status_code=303)


# ---------------------------------------------------------------- the queue


@dataclass(frozen=True)
class Chosen:
    """The queue's view and filters, as the query string says."""

    view: str | None
    filters: TicketFilter
    cursor: str | None
    query: str


def chosen(
    request: Request,
    view: Annotated[str | None, Query(max_length=40)] = None,
    priority: Priority | None = None,
    category: Category | None = None,
    topic: Topic | None = None,
    tag: Annotated[str | None, Query(max_length=80)] = None,
    department: Annotated[str | None, Query(max_length=64)] = None,
    channel: Channel | None = None,
    tier: Tier | None = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> Chosen:
    def one(value: object) -> list[str]:
        return [str(getattr(value, "value", value))] if value else []

    filters = TicketFilter(
        priority=one(priority),
        category=one(category),
        topic=one(topic),
        tag=one(tag.strip() if tag else None),
        channel=one(channel),
        tier=one(tier),
        department=department or None,
    )
    return Chosen(view, filters, cursor, request.url.query)


ChosenDep = Annotated[Chosen, Depends(chosen)]
FILTERS = ("priority", "category", "topic", "channel", "tier", "department")


async def _queue_context(found: Desk, me: Agent, picked: Chosen) -> dict[str, Any]:
    view = view_named(me.caller, picked.view)
    queue = await found.svc.call(
        read_queue(
            found.reads, me.caller, view, picked.filters, found.settings.page_size, picked.cursor
        )
    )
    filters = picked.filters
    return {
        "queue": queue,
        "views": views_for(me.caller),
        "filters": filters,
        "selected": {
            "priority": filters.priority,
            "category": filters.category,
            "topic": filters.topic,
            "channel": filters.channel,
            "tier": filters.tier,
            "department": [filters.department] if filters.department else [],
        },
        "filter_labels": {name: LABELS[name] for name in FILTERS},
        "query": picked.query,
        "choices": {
            "priority": [p.value for p in Priority],
            "category": [c.value for c in Category],
            "topic": [t.value for t in Topic],
            "channel": [c.value for c in Channel],
            "tier": [t.value for t in Tier],
            "department": found.departments,
        },
    }


@workspace.get("/")
async def queue_page(me: AgentDep, found: DeskDep, picked: ChosenDep) -> HTMLResponse:
    try:
        context = await _queue_context(found, me, picked)
    except ApiError as error:
        return error_page(found, me, error)
    return draw(found, "queue.html", me, **context)


@workspace.get("/queue")
async def queue_part(me: AgentDep, found: DeskDep, picked: ChosenDep) -> HTMLResponse:
    """The queue's counts and rows, for the page to swap in when something changed."""
    return draw(found, "_queue_body.html", me, **await _queue_context(found, me, picked))


# ---------------------------------------------------------------- the ticket page


@workspace.get("/tickets/{ticket_id}")
async def ticket_page(ticket_id: TicketIdPath, me: AgentDep, found: DeskDep) -> HTMLResponse:
    try:
        page = await read_ticket_page(found.svc, known(ticket_id), me.caller)
    except Exception as error:
        return error_page(found, me, error)
    forms = _forms_for(found, me.caller)
    return draw(
        found,
        "ticket.html",
        me,
        page=page,
        forms=[f for f in forms if f.action not in COMPOSER],
        composer=me.caller.kind is not RoleKind.DEPARTMENT,
        new_action_id=_action_id,
        prefill=_prefill(me),
    )


@workspace.get("/tickets/{ticket_id}/live")
async def ticket_part(ticket_id: TicketIdPath, me: AgentDep, found: DeskDep) -> HTMLResponse:
    """The ticket's header, alerts and conversation, for the page to swap in."""
    page = await read_ticket_page(found.svc, known(ticket_id), me.caller, whole=False)
    return draw(found, "_ticket_live.html", me, page=page)


def _forms_for(found: Desk, caller: Caller) -> list[ActionForm]:
    if caller.kind is RoleKind.DEPARTMENT:
        return [form for form in found.forms if form.for_departments]
    return found.forms


def _prefill(me: Agent) -> Callable[[str, str, TicketView], str | None]:
    """What a form's field starts with: the ticket's classification to change, and the
    agent's own name to assign to."""

    def prefill(action: str, name: str, view: TicketView) -> str | None:
        if action == "assign" and name == "agent_id":
            return me.caller.name
        if action == "classify" and name in ("category", "topic", "priority"):
            return str(getattr(view.classification, name).value)
        return None

    return prefill


def _action_id() -> str:
    return "ws-" + uuid.uuid4().hex


@workspace.post("/tickets/{ticket_id}/actions/{name}")
async def act(
    ticket_id: TicketIdPath, name: str, me: PostingAgent, found: DeskDep, request: Request
) -> JSONResponse:
    """One action of the table from its form. The form carries its action id: the script
    sends it again after a timeout, and the ticket applies it once."""
    form = found.form(name)
    if form not in _forms_for(found, me.caller):
        raise ApiError(403, "forbidden", f"role {me.caller.role} may not {name}")
    data = await form_fields(request)
    try:
        fields = form_body(form, data, me.words.time_zone)
    except FormError as error:
        raise ApiError(422, "invalid_request", str(error)) from None
    if me.caller.kind is RoleKind.DEPARTMENT:
        fields["department"] = me.caller.scope
    fields["action_id"] = data.get("action_id", [""])[0] or _action_id()
    try:
        body = ACTION_REQUESTS[form.action].model_validate(fields)
    except ValidationError as error:
        problems = "; ".join(
            f"{me.words.gettext(LABELS.get(str(e['loc'][0]), str(e['loc'][0])))}: {e['msg']}"
            if e["loc"]
            else e["msg"]
            for e in error.errors()
        )
        raise ApiError(422, "invalid_request", problems) from None
    action_id = body.action_id or _action_id()
    view = await perform(found.svc, ticket_id, form.action, body, me.caller, action_id)
    return JSONResponse(
        {"action_id": action_id, "status": view.status.value, "next_action_id": _action_id()},
        headers={"Cache-Control": "no-store"},
    )


@workspace.get("/tickets/{ticket_id}/scripts/{entry_id}")
async def script(
    ticket_id: TicketIdPath, entry_id: str, me: AgentDep, found: DeskDep
) -> JSONResponse:
    """A reply script in the customer's locale with the ticket's data, for the reply box."""
    if me.caller.kind is RoleKind.DEPARTMENT:
        raise ApiError(403, "forbidden", "departments do not reply to customers")
    entry = await script_for(found.svc, entry_id)
    view = await found.svc.call(found.svc.tickets.view(known(ticket_id)))
    return JSONResponse(
        {
            "script_id": entry.entry_id,
            "locale": view.locale,
            "text": script_words(found.svc, entry, view),
        }
    )


@workspace.post("/tickets/{ticket_id}/typing", status_code=204)
async def typing(ticket_id: TicketIdPath, me: PostingAgent, found: DeskDep) -> Response:
    await found.presence.typing(known(ticket_id), me.caller.name)
    await found.live.notify_presence(ticket_id)
    return Response(status_code=204)


# ---------------------------------------------------------------- assets


@workspace.get("/static/{name}")
async def static(name: str, request: Request) -> Response:
    """The workspace's own script and style, from the package (nothing from a CDN)."""
    path = _STATIC.joinpath(name)
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    if "/" in name or suffix not in _CONTENT_TYPES or not path.is_file():
        raise ApiError(404, "not_found", f"no asset {name}")
    content = path.read_bytes()
    etag = '"' + hashlib.sha256(content).hexdigest()[:16] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(content, media_type=_CONTENT_TYPES[suffix], headers=headers)


__all__ = ["VIEWS", "Desk", "install", "workspace"]
