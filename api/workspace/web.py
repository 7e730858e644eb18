"""What every workspace route stands on: the workspace's services (`Desk`), who is signed
in and in what language and zone (`Agent`), the CSRF check of every POST, and drawing a
page (Jinja2, with the agent's words and the pages' security headers)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import parse_qs, parse_qsl, urlencode

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from api.access import Caller
from api.deps import Services
from api.errors import ApiError, translate
from api.settings import WorkspaceSettings
from api.workspace import i18n
from api.workspace.forms import ActionForm, action_forms
from api.workspace.labels import HELP, LABELS, ROLES
from api.workspace.live import LiveHub
from api.workspace.presence import Presence
from api.workspace.sessions import COOKIE, CSRF_FIELD, CSRF_HEADER, Session, Sessions
from api.workspace.shared_reads import SharedReads
from workflows.privacy import mask

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
    reads: SharedReads
    presence: Presence
    forms: list[ActionForm]
    templates: jinja2.Environment
    departments: list[str]
    background: set[asyncio.Task[None]] = field(default_factory=set)

    @classmethod
    def build(cls, svc: Services) -> Desk:
        settings = svc.settings.workspace
        departments = sorted(svc.policy.departments)
        live = LiveHub(svc.pool)
        return cls(
            svc=svc,
            settings=settings,
            sessions=Sessions(svc.pool, svc.keys, settings.session_ttl),
            live=live,
            reads=SharedReads(svc.pool, live, settings.shared_reads_for),
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


class NotSignedIn(Exception):
    """No session: a page goes to the sign-in form, a script's request gets 401."""


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


def words_for(request: Request, found: Desk, session: Session | None) -> i18n.Words:
    """The person's chosen language and zone; else the browser's language (or the
    policy's staff locale for them) and the policy's zone."""
    policy = found.svc.policy
    locales = found.settings.locales
    chosen = session.preferences if session is not None else None
    if chosen is not None and chosen.locale in locales:
        return i18n.Words(chosen.locale, chosen.time_zone)
    staff_id = session.caller.name if session is not None else ""
    default = policy.staff_locales.get(staff_id, policy.staff_locale)
    locale = i18n.negotiate(request.headers.get("accept-language", ""), locales, default)
    return i18n.Words(locale, policy.time_zone)


async def agent(request: Request, found: DeskDep) -> Agent:
    session = await _session(request, found)
    return Agent(session, words_for(request, found, session))


async def posting_agent(request: Request, found: DeskDep) -> Agent:
    """A signed-in agent whose request carries the session's CSRF token (header or form
    field) and, if the browser names one, this origin."""
    me = await agent(request, found)
    same_origin(request)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        sent = (await form_fields(request)).get(CSRF_FIELD, [None])[0]
    if not me.session.csrf_matches(sent):
        raise ApiError(403, "csrf", "this form is out of date or not ours: reload the page")
    return me


AgentDep = Annotated[Agent, Depends(agent)]
PostingAgent = Annotated[Agent, Depends(posting_agent)]


def same_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise ApiError(403, "csrf", "a form from another site is refused")


async def form_fields(request: Request) -> dict[str, list[str]]:
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


def draw(
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


def error_page(found: Desk, me: Agent, error: BaseException) -> HTMLResponse:
    mapped = translate(error)
    if mapped is None:
        raise error
    return draw(found, "error.html", me, mapped.status, code=mapped.status, detail=mapped.detail)
