"""The words of every customer message: templates per locale, rendered at delivery.

The workflow says what to tell the customer (a `MessageKind` and its `MessageParams`);
this module says it, in the customer's language, with times in the customer's zone (or
the policy's) and durations in words. Templates are Jinja2 (sandboxed, strict about
undefined names); dates, durations and zone names come from Babel's CLDR data.

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
from babel.units import format_unit
from jinja2 import StrictUndefined, TemplateSyntaxError, meta, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from workflows.contracts import CustomerMessage, MessageKind, MessageParams

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

_LIVE, _ASYNC = "@live", "@async"
SUBJECT = "email_subject"
# Hidden context of a render: the filters read the customer's language and zone here.
_LOCALE, _ZONE = "__ticketflow_locale", "__ticketflow_zone"


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


class TemplateError(ValueError):
    """A template set that cannot be used; the message names the locale and kind."""


@dataclass(frozen=True)
class Rendered:
    locale: str
    text: str


@pass_context
def _when(context: Context, value: datetime | None) -> str:
    """A date and time as the customer reads it: `2026年11月30日 17:33（中国时间）`."""
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


def _environment() -> SandboxedEnvironment:
    # A parameter the workflow left out (no compensation) says nothing, never "None".
    env = SandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        finalize=lambda value: "" if value is None else value,
    )
    env.filters["when"] = _when
    env.filters["duration"] = _duration
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


class MessageTemplates:
    def __init__(self, sources: Mapping[str, Mapping[str, str]], default_locale: str) -> None:
        """Prefer `load`; this checks the sources and compiles them, or raises
        TemplateError naming every problem."""
        self._env = _environment()
        problems: list[str] = []
        missing = [locale for locale in REQUIRED_LOCALES if locale not in sources]
        problems += [f"locale {locale}: no templates" for locale in missing]
        self._templates: dict[tuple[str, str], Any] = {}
        for locale, templates in sources.items():
            for key, source in templates.items():
                if key == SUBJECT:
                    self._templates[locale, key] = source
                    continue
                kind_name = key.removesuffix(_LIVE).removesuffix(_ASYNC)
                try:
                    kind = MessageKind(kind_name)
                except ValueError:
                    known = ", ".join(k.value for k in PARAMETERS)
                    problems.append(f"{locale}.{key}: unknown message kind (known: {known})")
                    continue
                try:
                    parsed = self._env.parse(source)
                except TemplateSyntaxError as error:
                    problems.append(f"{locale}.{key}: {error.message} (line {error.lineno})")
                    continue
                unknown = meta.find_undeclared_variables(parsed) - PARAMETERS[kind]
                if unknown:
                    allowed = ", ".join(sorted(PARAMETERS[kind])) or "none"
                    problems.append(
                        f"{locale}.{key}: unknown parameter(s) {', '.join(sorted(unknown))}; "
                        f"{kind.value} takes {allowed}"
                    )
                    continue
                self._templates[locale, key] = self._env.from_string(source)
            if (locale, SUBJECT) not in self._templates:
                problems.append(f"{locale}.{SUBJECT}: missing")
            for kind in PARAMETERS:
                if (locale, kind.value) not in self._templates and not any(
                    p.startswith(f"{locale}.{kind.value}") for p in problems
                ):
                    problems.append(f"{locale}.{kind.value}: missing")
        if default_locale not in sources:
            problems.append(f"default locale {default_locale}: no templates")
        problems += self._render_problems(sources)
        if problems:
            raise TemplateError("message templates: " + "; ".join(problems))
        self.locales = tuple(sources)
        self.default_locale = default_locale
        self._babel = {locale: Locale.parse(locale, sep="-") for locale in sources}

    @classmethod
    def load(
        cls, overrides: Path | None = None, default_locale: str = "zh-Hans"
    ) -> MessageTemplates:
        """The shipped templates, with an operator's file laid over them (same shape:
        a table per locale, a key per kind)."""
        shipped = resources.files("activities").joinpath("templates", "messages.toml")
        sources: dict[str, dict[str, str]] = tomllib.loads(shipped.read_text("utf-8"))
        if overrides is not None:
            try:
                extra = tomllib.loads(overrides.read_text("utf-8"))
            except (OSError, tomllib.TOMLDecodeError) as error:
                raise TemplateError(f"message templates file {overrides}: {error}") from None
            for locale, templates in extra.items():
                if not isinstance(templates, dict):
                    raise TemplateError(
                        f"message templates file {overrides}: [{locale}] must be a table"
                    )
                merged = sources.setdefault(locale, {})
                for key in templates:
                    if _LIVE not in key and _ASYNC not in key:
                        # The operator's wording of a kind replaces the shipped variants
                        # of it too, unless the file words those as well.
                        merged.pop(f"{key}{_LIVE}", None)
                        merged.pop(f"{key}{_ASYNC}", None)
                merged.update(templates)
        return cls(sources, default_locale)

    def _render_problems(self, sources: Mapping[str, Mapping[str, str]]) -> list[str]:
        """Render every template once with parameters of the right types, with and
        without the optional ones: one that validates but cannot say them (a duration
        given to `when`) fails here, at start, not at a customer's message."""
        problems = []
        env_locale = {locale: Locale.parse(locale, sep="-") for locale in sources}
        for (locale, key), template in self._templates.items():
            if key == SUBJECT:
                continue
            for values in (_SAMPLE, _SAMPLE_SPARSE):
                context = dict(values)
                context[_LOCALE] = env_locale[locale]
                context[_ZONE] = "Asia/Shanghai"
                try:
                    template.render(context)
                except Exception as error:  # whatever the template does wrong, say where
                    problems.append(f"{locale}.{key}: cannot render ({error})")
                    break
        return problems

    def subject(self, locale: str) -> str:
        """The subject line of an e-mail in `locale`."""
        subject: str = self._templates[locale, SUBJECT]
        return subject

    def render(self, message: CustomerMessage, zone: str) -> Rendered:
        """The message's words in its customer's locale; times in `message.time_zone`,
        else `zone` (the policy's)."""
        locale = normalise_locale(message.locale, self.locales, self.default_locale)
        if message.text is not None and message.params == MessageParams():
            # Queued before templates: the sentence was written then.
            return Rendered(locale, message.text)
        variant = f"{message.kind.value}{_LIVE if message.live else _ASYNC}"
        template = (
            self._templates.get((locale, variant)) or self._templates[locale, message.kind.value]
        )
        values = message.params.model_dump()
        context = {name: values[name] for name in PARAMETERS[message.kind]}
        context[_LOCALE] = self._babel[locale]
        context[_ZONE] = message.time_zone or zone
        return Rendered(locale, template.render(context).strip())
