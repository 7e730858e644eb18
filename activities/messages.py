"""The words of every message: templates per locale, rendered at delivery.

Two audiences, the same machinery. Customers: the workflow says what to tell the
customer (a `MessageKind` and its `MessageParams`); `templates/messages.toml` says it in
the customer's language, with times in the customer's zone (or the policy's). The
company's own people (departments, supervisors, agents, partners): the workflow says what
to hand off (a `HandoffKind` and its `HandoffFacts`); `templates/handoffs.toml` says it
in the company's locale (`ServicePolicy.staff_locale`, or a recipient's own), with times
in the company's zone. Templates are Jinja2 (sandboxed, strict about undefined names);
dates, durations, percentages and zone names come from Babel's CLDR data.

`MessageTemplates.load()` checks, once at start, that every kind has a template in every
locale and uses only the parameters of its kind, so a bad template stops the worker with
a message that names it, not a customer's message later.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_skeleton, get_timezone_name
from babel.numbers import format_percent
from babel.units import format_unit
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from workflows.contracts import (
    CustomerMessage,
    Handoff,
    HandoffKind,
    MessageKind,
    MessageParams,
)
from workflows.vocabulary import Milestone

# The locales every deployment speaks (SPEC: zh-Hans, zh-Hant, en at least).
REQUIRED_LOCALES = ("zh-Hans", "zh-Hant", "en")

# What each kind may say: the MessageParams fields its template may use.
PARAMETERS: Mapping[MessageKind, frozenset[str]] = {
    MessageKind.ACKNOWLEDGEMENT: frozenset({"expect_progress_by"}),
    MessageKind.AUTO_REPLY: frozenset({"within"}),
    MessageKind.AGENT_REPLY: frozenset({"text"}),
    MessageKind.RESULT: frozenset({"text", "result_kind", "compensation"}),
    MessageKind.CONFIRMATION_REQUEST: frozenset({"within"}),
    MessageKind.PARTNER_HANDOFF: frozenset({"every"}),
    MessageKind.PARTNER_PROGRESS: frozenset({"every", "number"}),
    MessageKind.LONG_TERM_PLAN: frozenset({"text"}),
    MessageKind.SATISFACTION_SURVEY: frozenset({"until"}),
    MessageKind.PROMISE_CHANGED: frozenset({"within", "until"}),
}

# What each hand-off may say: the HandoffFacts fields its template may use, besides what
# every hand-off names (its ticket, tag and priority). `text` is the person's words the
# hand-off carries (`Handoff.summary`), `checkpoints` a partner contact's.
_EVERY_HANDOFF = frozenset({"ticket_id", "tag", "priority"})
_PROMISE = frozenset({"within", "milestone"})
HANDOFF_PARAMETERS: Mapping[HandoffKind, frozenset[str]] = {
    kind: _EVERY_HANDOFF | extra
    for kind, extra in {
        HandoffKind.WORK_ORDER: frozenset({"text"}),
        HandoffKind.PROGRESS_REMINDER: frozenset({"due_at"}),
        # Convened for one ticket (its promise) or for a surge (`surge`, the other None).
        HandoffKind.EMERGENCY_GROUP: _PROMISE | {"surge"},
        HandoffKind.RISK_CONTROL: frozenset(),
        HandoffKind.UPGRADE_REVIEW: frozenset({"within", "number"}),
        HandoffKind.PARTNER_CONTACT: frozenset({"text", "due_at", "checkpoints"}),
        HandoffKind.SUPERVISOR_STANDBY: frozenset({"within"}),
        HandoffKind.SLA_ESCALATION: _PROMISE | {"number"},
        HandoffKind.SLA_WARNING: _PROMISE | {"due_at", "share"},
        HandoffKind.REVIEW_REMINDER: frozenset({"due_at", "number", "text"}),
        HandoffKind.REVIEW_ESCALATION: frozenset({"due_at", "text"}),
        HandoffKind.DELIVERY_FAILED: frozenset({"failed_kind", "destination", "attempts", "error"}),
    }.items()
}

_LIVE, _ASYNC = "@live", "@async"
SUBJECT = "email_subject"
# The staff templates' table of words per milestone (`{{ milestone | milestone }}`).
MILESTONES = "milestone"
# An operator's file words hand-offs under this table: [staff.<locale>].
STAFF = "staff"
# Hidden context of a render: the filters read the reader's language, zone and labels here.
_LOCALE, _ZONE, _LABELS = "__ticketflow_locale", "__ticketflow_zone", "__ticketflow_labels"


# Parameters of the right types for the start-up render: every one, and only the ones
# every message of its kind carries.
_SAMPLE: dict[str, Any] = {
    "text": "您好",
    "result_kind": "technical",
    "compensation": "50 元",
    "expect_progress_by": datetime(2026, 1, 1, 9, 30, tzinfo=ZoneInfo("UTC")),
    "until": datetime(2026, 1, 8, 9, 30, tzinfo=ZoneInfo("UTC")),
    "within": timedelta(hours=24),
    "every": timedelta(hours=6),
    "number": 2,
}
_SAMPLE_SPARSE = {**_SAMPLE, "compensation": None, "result_kind": None}
_HANDOFF_SAMPLE: dict[str, Any] = {
    "ticket_id": "ticket-0123456789abcdef01234567",
    "tag": "故障-支付-A級",
    "priority": "A",
    "text": "请核对提现通道",
    "checkpoints": ["回单", "退款"],
    "due_at": datetime(2026, 1, 1, 9, 30, tzinfo=ZoneInfo("UTC")),
    "within": timedelta(hours=4),
    "milestone": Milestone.CAUSE_LOCATED,
    "share": 0.75,
    "number": 2,
    "failed_kind": "acknowledgement",
    "destination": "queue://tech-oncall",
    "attempts": 7,
    "error": "HTTP 503 from hooks.example",
    "surge": None,
}
_HANDOFF_SPARSE = {**_HANDOFF_SAMPLE, "text": None, "checkpoints": [], "number": None}
# The start-up render tries the surge's emergency group too (no promise, a surge).
_HANDOFF_SURGE = {
    **_HANDOFF_SPARSE,
    "within": None,
    "milestone": None,
    "surge": {
        "dimension": "topic",
        "value": "verification_code",
        "last_24h": 40,
        "day_before": 12,
        "week_before": 10,
        "explains": ["technical_fault"],
    },
}


class TemplateError(ValueError):
    """A template set that cannot be used; the message names the locale and kind."""


@dataclass(frozen=True)
class Rendered:
    locale: str | None  # None: a hand-off queued before staff templates, said as it was
    text: str


@pass_context
def _when(context: Context, value: datetime | None) -> str:
    """A date and time as the reader reads it: `2026年11月30日 17:33（中国时间）`."""
    if value is None:
        return ""
    locale: Locale = context[_LOCALE]
    zone = ZoneInfo(context[_ZONE])
    moment = format_skeleton("yMMMd", value, tzinfo=zone, locale=locale)
    clock = format_skeleton("Hm", value, tzinfo=zone, locale=locale)
    name = get_timezone_name(zone, width="long", locale=locale)
    if locale.language == "zh":
        return f"{moment} {clock}（{name}）"
    return f"{moment} {clock} ({name})"


# The largest unit a duration is a whole number of: 36 h stays "36 hours", not "2 days".
_UNITS = (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))


@pass_context
def _duration(context: Context, value: timedelta | None) -> str:
    """`6 小時`, `6 hours`, `3 天`: CLDR's units and plurals, never rounded."""
    if value is None:
        return ""
    locale: Locale = context[_LOCALE]
    seconds = max(1, round(value.total_seconds()))
    unit, size = next((u, n) for u, n in _UNITS if seconds % n == 0)
    return format_unit(seconds // size, f"duration-{unit}", length="long", locale=locale)


@pass_context
def _percent(context: Context, value: float | None) -> str:
    """`75%`, `75 %`: as the reader's language writes a share."""
    return "" if value is None else format_percent(value, locale=context[_LOCALE])


@pass_context
def _milestone(context: Context, value: Milestone | None) -> str:
    """What a milestone is called in the reader's language (the locale's table)."""
    return "" if value is None else str(context[_LABELS][MILESTONES][Milestone(value).value])


def _environment() -> SandboxedEnvironment:
    # A parameter the workflow left out (no compensation) says nothing, never "None".
    env = SandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        finalize=lambda value: "" if value is None else value,
    )
    env.filters["when"] = _when
    env.filters["duration"] = _duration
    env.filters["percent"] = _percent
    env.filters["milestone"] = _milestone
    return env


def normalise_locale(tag: str, known: Iterable[str], default: str) -> str:
    """The template locale for an intake's locale: zh-CN, zh-SG → zh-Hans; zh-TW, zh-HK,
    zh-MO → zh-Hant; en-* → en; a locale the templates have → itself; else `default`."""
    known = set(known)
    if tag in known:
        return tag
    # Extensions (-u-ca-gregory, -x-…) say nothing about the language.
    subtags = tag.replace("_", "-").split("-")
    for marker in ("u", "x", "t"):
        if marker in subtags[1:]:
            subtags = subtags[: subtags.index(marker, 1)]
    tag = "-".join(subtags)
    explicit = next((s.title() for s in subtags[1:] if s.title() in ("Hans", "Hant")), None)
    try:
        # Babel fills in the script from CLDR's likely subtags (zh-TW is zh-Hant-TW).
        parsed = Locale.parse(tag.replace("_", "-"), sep="-")
    except (ValueError, UnknownLocaleError):
        return default
    if parsed.language == "zh":
        found = f"zh-{explicit or parsed.script or 'Hans'}"
        return found if found in known else default
    return parsed.language if parsed.language in known else default


@dataclass(frozen=True)
class _Audience:
    """Whose words a template set holds: what it is called in errors, its kinds and their
    parameters, the label tables each locale needs, and sample parameters to render."""

    what: str
    parameters: Mapping[str, frozenset[str]]
    labels: Mapping[str, frozenset[str]]
    samples: tuple[Mapping[str, Any], ...]


_CUSTOMERS = _Audience(
    "message templates",
    {kind.value: names for kind, names in PARAMETERS.items()},
    {},
    (_SAMPLE, _SAMPLE_SPARSE),
)
_STAFF = _Audience(
    "staff templates",
    {kind.value: names for kind, names in HANDOFF_PARAMETERS.items()},
    {MILESTONES: frozenset(m.value for m in Milestone)},
    (_HANDOFF_SAMPLE, _HANDOFF_SPARSE, _HANDOFF_SURGE),
)


class _Wording:
    """One audience's templates, checked and compiled: a table per locale, a key per
    kind (`<kind>@live` / `<kind>@async` where a channel's wording differs), a subject
    line, and the audience's label tables."""

    def __init__(
        self, audience: _Audience, sources: Mapping[str, Mapping[str, Any]], default: str
    ) -> None:
        self._env = _environment()
        self.what = audience.what
        problems = [f"locale {loc}: no templates" for loc in REQUIRED_LOCALES if loc not in sources]
        self._templates: dict[tuple[str, str], Template] = {}
        self._subjects: dict[str, str] = {}
        self._labels: dict[str, dict[str, dict[str, str]]] = {}
        for locale, templates in sources.items():
            problems += self._compile(audience, locale, templates)
        if default not in sources:
            problems.append(f"default locale {default}: no templates")
        self._babel = {locale: Locale.parse(locale, sep="-") for locale in sources}
        problems += self._render_problems(audience)
        if problems:
            raise TemplateError(f"{audience.what}: " + "; ".join(problems))
        self.locales = tuple(sources)
        self.default_locale = default

    def _compile(self, audience: _Audience, locale: str, templates: Mapping[str, Any]) -> list[str]:
        problems: list[str] = []
        self._labels[locale] = {}
        for key, source in templates.items():
            if key == SUBJECT:
                self._subjects[locale] = str(source)
                continue
            if key in audience.labels:
                words = dict(source) if isinstance(source, Mapping) else {}
                missing = sorted(audience.labels[key] - set(words))
                if missing:
                    problems.append(f"{locale}.{key}: no words for {', '.join(missing)}")
                self._labels[locale][key] = {name: str(text) for name, text in words.items()}
                continue
            kind = key.removesuffix(_LIVE).removesuffix(_ASYNC)
            if kind not in audience.parameters:
                known = ", ".join(audience.parameters)
                problems.append(f"{locale}.{key}: unknown kind (known: {known})")
                continue
            try:
                parsed = self._env.parse(str(source))
            except TemplateSyntaxError as error:
                problems.append(f"{locale}.{key}: {error.message} (line {error.lineno})")
                continue
            unknown = meta.find_undeclared_variables(parsed) - audience.parameters[kind]
            if unknown:
                allowed = ", ".join(sorted(audience.parameters[kind])) or "none"
                problems.append(
                    f"{locale}.{key}: unknown parameter(s) {', '.join(sorted(unknown))}; "
                    f"{kind} takes {allowed}"
                )
                continue
            self._templates[locale, key] = self._env.from_string(str(source))
        if locale not in self._subjects:
            problems.append(f"{locale}.{SUBJECT}: missing")
        for name in audience.labels:
            if name not in self._labels[locale]:
                problems.append(f"{locale}.{name}: missing")
        for kind in audience.parameters:
            if (locale, kind) not in self._templates and not any(
                p.startswith(f"{locale}.{kind}") for p in problems
            ):
                problems.append(f"{locale}.{kind}: missing")
        return problems

    def _render_problems(self, audience: _Audience) -> list[str]:
        """Render every template once with parameters of the right types, with and
        without the optional ones: one that validates but cannot say them (a duration
        given to `when`) fails here, at start, not at a reader's message."""
        problems = []
        for (locale, key), template in self._templates.items():
            for values in audience.samples:
                try:
                    self._say(template, locale, dict(values), "Asia/Shanghai")
                except Exception as error:  # whatever the template does wrong, say where
                    problems.append(f"{locale}.{key}: cannot render ({error})")
                    break
        return problems

    def _say(self, template: Template, locale: str, values: dict[str, Any], zone: str) -> str:
        values[_LOCALE] = self._babel[locale]
        values[_ZONE] = zone
        values[_LABELS] = self._labels.get(locale, {})
        return template.render(values).strip()

    def locale_for(self, tag: str) -> str:
        return normalise_locale(tag, self.locales, self.default_locale)

    def render(self, locale: str, kind: str, values: dict[str, Any], zone: str, live: bool) -> str:
        """`kind` in a locale this set has (`locale_for`), times in `zone`."""
        variant = f"{kind}{_LIVE if live else _ASYNC}"
        template = self._templates.get((locale, variant)) or self._templates[locale, kind]
        return self._say(template, locale, values, zone)

    def subject(self, locale: str) -> str:
        return self._subjects[locale]


def _read(path: Path, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise TemplateError(f"{what} file {path}: {error}") from None


def _lay_over(sources: dict[str, dict[str, Any]], extra: Mapping[str, Any], where: str) -> None:
    """An operator's wording over the shipped one, table by table."""
    for locale, templates in extra.items():
        if not isinstance(templates, dict):
            raise TemplateError(f"message templates file {where}: [{locale}] must be a table")
        merged = sources.setdefault(locale, {})
        for key in templates:
            if _LIVE not in key and _ASYNC not in key:
                # The operator's wording of a kind replaces the shipped variants of it
                # too, unless the file words those as well.
                merged.pop(f"{key}{_LIVE}", None)
                merged.pop(f"{key}{_ASYNC}", None)
        merged.update(templates)


class MessageTemplates:
    def __init__(
        self,
        sources: Mapping[str, Mapping[str, str]],
        default_locale: str,
        staff_sources: Mapping[str, Mapping[str, Any]] | None = None,
        staff_locale: str = "zh-Hans",
    ) -> None:
        """Prefer `load`; this checks the sources and compiles them, or raises
        TemplateError naming every problem. Without `staff_sources`, the shipped ones;
        `staff_locale` (the policy's) says a hand-off to a locale they lack."""
        self._customers = _Wording(_CUSTOMERS, sources, default_locale)
        self._staff = _Wording(
            _STAFF,
            staff_sources if staff_sources is not None else _shipped("handoffs.toml"),
            staff_locale,
        )
        self.locales = self._customers.locales
        self.default_locale = default_locale

    @classmethod
    def load(
        cls,
        overrides: Path | None = None,
        default_locale: str = "zh-Hans",
        staff_locale: str = "zh-Hans",
    ) -> MessageTemplates:
        """The shipped templates, with an operator's file laid over them (same shape:
        a table per locale, a key per kind; hand-offs under [staff.<locale>])."""
        sources = _shipped("messages.toml")
        staff = _shipped("handoffs.toml")
        if overrides is not None:
            extra = _read(overrides, "message templates")
            staff_extra = extra.pop(STAFF, {})
            if not isinstance(staff_extra, dict):
                raise TemplateError(f"message templates file {overrides}: [staff] must be a table")
            _lay_over(sources, extra, str(overrides))
            _lay_over(staff, staff_extra, str(overrides))
        return cls(sources, default_locale, staff, staff_locale)

    def subject(self, locale: str) -> str:
        """The subject line of an e-mail to a customer in `locale`."""
        return self._customers.subject(locale)

    def staff_subject(self, locale: str) -> str:
        """The subject line of a hand-off sent by e-mail, in `locale` (a staff locale)."""
        return self._staff.subject(self._staff.locale_for(locale))

    def render(self, message: CustomerMessage, zone: str) -> Rendered:
        """The message's words in its customer's locale; times in `message.time_zone`,
        else `zone` (the policy's)."""
        locale = self._customers.locale_for(message.locale)
        if message.text is not None and message.params == MessageParams():
            # Queued before templates: the sentence was written then.
            return Rendered(locale, message.text)
        values = message.params.model_dump()
        context = {name: values[name] for name in PARAMETERS[message.kind]}
        text = self._customers.render(
            locale, message.kind.value, context, message.time_zone or zone, message.live
        )
        return Rendered(locale, text)

    def render_handoff(self, handoff: Handoff, locale: str, zone: str) -> Rendered:
        """A hand-off's words in `locale` (the company's, or its recipient's: the policy's
        `staff_locale`), times in `zone` (the company's)."""
        if handoff.facts is None:
            # Queued before staff templates: the sentence was written then.
            return Rendered(None, handoff.summary or handoff.kind.value)
        chosen = self._staff.locale_for(locale)
        values = handoff.facts.model_dump() | {
            "ticket_id": handoff.ticket_id,
            "tag": handoff.tag,
            "priority": handoff.priority.value,
            "text": handoff.summary,
            "checkpoints": handoff.data.checkpoints or [],
        }
        context = {name: values[name] for name in HANDOFF_PARAMETERS[handoff.kind]}
        return Rendered(
            chosen, self._staff.render(chosen, handoff.kind.value, context, zone, False)
        )


def _shipped(name: str) -> dict[str, dict[str, Any]]:
    shipped = resources.files("activities").joinpath("templates", name)
    found: dict[str, dict[str, Any]] = tomllib.loads(shipped.read_text("utf-8"))
    return found
