"""The workspace over HTTP, at /app: signing in and out, the queue, the ticket page, the
actions' forms, the live stream, typing, and the agent's language and time zone.

Pages are drawn on the server (Jinja2) and kept current by a small script
(`static/workspace.js`) that listens to `/app/live` and reads the changed part again.
Every form posts with the session's CSRF token; the session cookie is HttpOnly and
SameSite=Strict and holds no key.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Any
from urllib.parse import parse_qs, parse_qsl, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.responses import StreamingResponse

from api.access import Caller, RoleKind
from api.deps import Services, TicketIdPath, known, services
from api.errors import ApiError, translate
from api.read_model import TicketFilter
from api.routes.actions import perform
from api.routes.knowledge import script_for, script_words
from api.schemas import ACTION_REQUESTS
from api.settings import WorkspaceSettings
from api.workspace import i18n
from api.workspace.forms import COMPOSER, ActionForm, FormError, action_forms, form_body
from api.workspace.labels import HELP, LABELS, ROLES
from api.workspace.live import Change, LiveHub
from api.workspace.presence import Presence
from api.workspace.queue import VIEWS, read_queue, view_named, views_for
from api.workspace.sessions import COOKIE, CSRF_FIELD, CSRF_HEADER, Session, Sessions
from api.workspace.ticket_page import may_watch, read_ticket_page
from workflows.contracts import TicketView
from workflows.privacy import mask
from workflows.vocabulary import Category, Channel, Priority, Tier, Topic

workspace = APIRouter(prefix="/app", include_in_schema=False)

SIGNIN_COOKIE = "tf_signin"
_STATIC = resources.files("api.workspace").joinpath("static")
_CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# Nothing but this origin: no inline script, no CDN, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass
class Desk:
    """The workspace's own services beside the API's."""

    svc: Services
    settings: WorkspaceSettings
    sessions: Sessions
    live: LiveHub
    presence: Presence
    forms: list[ActionForm]
    templates: jinja2.Environment
    departments: list[str]
    background: set[asyncio.Task[None]] = field(default_factory=set)

    @classmethod
    def build(cls, svc: Services) -> Desk:
        settings = svc.settings.workspace
        departments = sorted(svc.policy.departments)
        return cls(
            svc=svc,
            settings=settings,
            sessions=Sessions(svc.pool, svc.keys, settings.session_ttl),
            live=LiveHub(svc.pool),
            presence=Presence(svc.pool, settings.presence_ttl, settings.typing_ttl),
            forms=action_forms(departments),
            templates=jinja2.Environment(
                loader=jinja2.PackageLoader("api.workspace", "templates"),
                autoescape=True,
                undefined=jinja2.StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
            ),
            departments=departments,
        )

    def __post_init__(self) -> None:
        self.templates.filters["mask"] = mask
        self.templates.globals.update(
            view_query=view_query, cursor_query=cursor_query, help=HELP, roles=ROLES
        )

    def later(self, work: Awaitable[None]) -> None:
        """Work that must finish even if the request that started it is gone."""

        async def run() -> None:
            await work

        task = asyncio.get_running_loop().create_task(run())
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def close(self) -> None:
        await self.live.close()
        if self.background:
            await asyncio.wait(self.background, timeout=5)

    def form(self, name: str) -> ActionForm:
        for form in self.forms:
            if form.name == name:
                return form
        raise ApiError(404, "not_found", f"no action {name}")


def view_query(query: str, view: str) -> str:
    """The queue's query string with another view (and from its first page)."""
    kept = [(k, v) for k, v in parse_qsl(query) if k not in ("view", "cursor")]
    return urlencode([("view", view), *kept])


def cursor_query(query: str, cursor: str) -> str:
    kept = [(k, v) for k, v in parse_qsl(query) if k != "cursor"]
    return urlencode([*kept, ("cursor", cursor)])


def desk(request: Request) -> Desk:
    found: Desk = request.app.state.desk
    return found


DeskDep = Annotated[Desk, Depends(desk)]
Svc = Annotated[Services, Depends(services)]


class NotSignedIn(Exception):
    """No session: a page goes to the sign-in form, a script's request gets 401."""


def install(app: FastAPI, svc: Services) -> None:
    app.state.desk = Desk.build(svc)
    app.include_router(workspace)

    async def not_signed_in(request: Request, _error: Exception) -> Response:
        wants_page = request.method == "GET" and "text/html" in request.headers.get("accept", "")
        if wants_page:
            return RedirectResponse("/app/signin", status_code=303)
        return JSONResponse(
            {"code": "unauthorized", "detail": "sign in to the workspace first"}, status_code=401
        )

    app.add_exception_handler(NotSignedIn, not_signed_in)


# ---------------------------------------------------------------- who, in what language


@dataclass(frozen=True)
class Agent:
    session: Session
    words: i18n.Words

    @property
    def caller(self) -> Caller:
        return self.session.caller


async def _session(request: Request, found: Desk) -> Session:
    session = await found.sessions.find(request.cookies.get(COOKIE))
    if session is None:
        raise NotSignedIn()
    return session


async def _words(request: Request, found: Desk, staff_id: str | None) -> i18n.Words:
    policy = found.svc.policy
    locales = found.settings.locales
    row = (
        None
        if staff_id is None
        else await found.svc.pool.fetchrow(
            "SELECT locale, time_zone FROM workspace_preferences WHERE staff_id = $1", staff_id
        )
    )
    if row is not None and row["locale"] in locales:
        return i18n.Words(row["locale"], row["time_zone"])
    default = policy.staff_locales.get(staff_id or "", policy.staff_locale)
    locale = i18n.negotiate(request.headers.get("accept-language", ""), locales, default)
    return i18n.Words(locale, policy.time_zone)


async def agent(request: Request, found: DeskDep) -> Agent:
    session = await _session(request, found)
    return Agent(session, await _words(request, found, session.caller.name))


async def posting_agent(request: Request, found: DeskDep) -> Agent:
    """A signed-in agent whose request carries the session's CSRF token (header or form
    field) and, if the browser names one, this origin."""
    me = await agent(request, found)
    _same_origin(request)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        sent = (await _form(request)).get(CSRF_FIELD, [None])[0]
    if not me.session.csrf_matches(sent):
        raise ApiError(403, "csrf", "this form is out of date or not ours: reload the page")
    return me


AgentDep = Annotated[Agent, Depends(agent)]
PostingAgent = Annotated[Agent, Depends(posting_agent)]


def _same_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise ApiError(403, "csrf", "a form from another site is refused")


async def _form(request: Request) -> dict[str, list[str]]:
    """The urlencoded body (the forms and the script send nothing else)."""
    cached: dict[str, list[str]] | None = getattr(request.state, "workspace_form", None)
    if cached is None:
        raw = await request.body()
        try:
            cached = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
        except (UnicodeDecodeError, ValueError):
            raise ApiError(422, "invalid_request", "the form is not urlencoded UTF-8") from None
        request.state.workspace_form = cached
    return cached


# ---------------------------------------------------------------- drawing pages


def _html(
    found: Desk, template: str, me: Agent | None, status: int = 200, **context: Any
) -> HTMLResponse:
    words = (
        me.words
        if me is not None
        else i18n.Words(found.svc.policy.staff_locale, found.svc.policy.time_zone)
    )

    def label(value: object) -> str:
        text = str(getattr(value, "value", value))
        return words.gettext(LABELS[text]) if text in LABELS else text

    body = found.templates.get_template(template).render(
        _=words.gettext,
        ngettext=words.ngettext,
        label=label,
        when=words.when,
        words=words,
        me=me,
        csrf=me.session.csrf if me is not None else "",
        role=me.caller.kind.value if me is not None else "",
        locales=found.settings.locales,
        temporal_ui=found.settings.temporal_ui_url,
        **context,
    )
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def _error_page(found: Desk, me: Agent, error: BaseException) -> HTMLResponse:
    mapped = translate(error)
    if mapped is None:
        raise error
    return _html(found, "error.html", me, mapped.status, code=mapped.status, detail=mapped.detail)


# ---------------------------------------------------------------- signing in and out


@workspace.get("")
async def app_root() -> RedirectResponse:
    return RedirectResponse("/app/", status_code=307)


@workspace.get("/signin")
async def signin_page(request: Request, found: DeskDep) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    me = None
    words = await _words(request, found, None)
    response = _html(found, "signin.html", me, signin_token=token, refused=False, lang=words.locale)
    _cookie(response, found, SIGNIN_COOKIE, token, request, path="/app/signin")
    return response


@workspace.post("/signin")
async def sign_in(request: Request, found: DeskDep) -> Response:
    _same_origin(request)
    form = await _form(request)
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    sent = form.get(CSRF_FIELD, [""])[0]
    if not expected or not secrets.compare_digest(sent.encode(), expected.encode()):
        raise ApiError(403, "csrf", "the sign-in form is out of date: reload it")
    opened = await found.svc.call(found.sessions.open(form.get("key", [""])[0].strip()))
    if opened is None:
        words = await _words(request, found, None)
        return _html(
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
    form = await _form(request)
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
            found.svc.pool, me.caller, view, picked.filters, found.settings.page_size, picked.cursor
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
        return _error_page(found, me, error)
    return _html(found, "queue.html", me, **context)


@workspace.get("/queue")
async def queue_part(me: AgentDep, found: DeskDep, picked: ChosenDep) -> HTMLResponse:
    """The queue's counts and rows, for the page to swap in when something changed."""
    return _html(found, "_queue_body.html", me, **await _queue_context(found, me, picked))


# ---------------------------------------------------------------- the ticket page


@workspace.get("/tickets/{ticket_id}")
async def ticket_page(ticket_id: TicketIdPath, me: AgentDep, found: DeskDep) -> HTMLResponse:
    try:
        page = await read_ticket_page(found.svc, known(ticket_id), me.caller)
    except Exception as error:
        return _error_page(found, me, error)
    forms = _forms_for(found, me.caller)
    return _html(
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
    return _html(found, "_ticket_live.html", me, page=page)


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
    data = await _form(request)
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


# ---------------------------------------------------------------- live


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n"


@workspace.get("/live")
async def live(
    me: AgentDep,
    found: DeskDep,
    ticket: Annotated[str | None, Query(max_length=64)] = None,
) -> StreamingResponse:
    """Server-sent events: `tickets` (ids that changed, for the page to read again),
    `presence` (who else has this ticket open, and who types), `resync` (read
    everything again). Nothing here polls Temporal."""
    watched = known(ticket) if ticket else None
    if watched is not None:
        await may_watch(found.svc, watched, me.caller)
    settings = found.settings
    connection = uuid.uuid4().hex

    async def stream() -> AsyncIterator[str]:
        async with found.live.subscribe() as subscription:
            if watched is not None:
                await found.presence.join(watched, connection, me.caller.name)
                await found.live.notify_presence(watched)
            try:
                yield "retry: 1000\n\n"
                while True:
                    try:
                        change, ticket_id = await asyncio.wait_for(
                            subscription.queue.get(), settings.live_heartbeat.total_seconds()
                        )
                    except TimeoutError:
                        if watched is not None:
                            await found.presence.touch(watched, connection)
                        yield ": still here\n\n"
                        continue
                    changes = [(change, ticket_id)]
                    # A burst (an action's events, a batch of deliveries) is sent as one.
                    await asyncio.sleep(settings.live_coalesce.total_seconds())
                    while not subscription.queue.empty():
                        changes.append(subscription.queue.get_nowait())
                    kinds = {kind for kind, _ in changes}
                    if Change.CLOSING in kinds:
                        return
                    if Change.RESYNC in kinds:
                        yield _event("resync", {})
                    changed = sorted({tid for kind, tid in changes if kind is Change.TICKET})
                    if changed:
                        yield _event("tickets", changed)
                    if watched is not None and (watched, Change.PRESENCE) in {
                        (tid, kind) for kind, tid in changes
                    } | ({(watched, Change.PRESENCE)} if Change.RESYNC in kinds else set()):
                        viewers = await found.presence.viewers(watched)
                        yield _event(
                            "presence",
                            [
                                # ISO 8601 instants (str() would write a space
                                # for the T, which not every browser's Date reads).
                                {
                                    **v.model_dump(mode="json"),
                                    "me": v.staff_id == me.caller.name,
                                }
                                for v in viewers
                            ],
                        )
            finally:
                if watched is not None:
                    found.later(_leave(found, watched, connection))

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _leave(found: Desk, ticket_id: str, connection: str) -> None:
    await found.presence.leave(ticket_id, connection)
    await found.live.notify_presence(ticket_id)


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
