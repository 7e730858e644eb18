"""The workspace's words and times in the agent's language and zone.

Words come from Babel catalogues (`locale/<locale>/LC_MESSAGES/messages.po`, one per
language of `workspace.locales`), compiled in memory when first used, so a translator
edits a `.po` file and nothing else. Dates, times and durations are Babel's, in the
agent's time zone.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, lru_cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime, format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

DOMAIN = "messages"


def _folder(locale: str) -> str:
    return locale.replace("-", "_")


def catalogue_path(locale: str) -> Any:
    return (
        resources.files("api.workspace")
        .joinpath("locale")
        .joinpath(_folder(locale))
        .joinpath("LC_MESSAGES")
        .joinpath(f"{DOMAIN}.po")
    )


@cache
def translations(locale: str) -> Translations:
    """The locale's catalogue; a language without one reads the source (English)."""
    path = catalogue_path(locale)
    if not path.is_file():
        return Translations()
    with path.open("rb") as po:
        catalog = read_po(po, locale=Locale.parse(_folder(locale)))
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(fp=compiled, domain=DOMAIN)


def negotiate(accept_language: str, available: list[str], default: str) -> str:
    """The browser's first language the workspace speaks (zh-TW and zh-HK read zh-Hant,
    other Chinese zh-Hans), else the company's."""
    for part in accept_language.split(","):
        tag = part.split(";")[0].strip()
        if not tag:
            continue
        lowered = tag.lower()
        if lowered.startswith("zh"):
            traditional = any(mark in lowered for mark in ("hant", "-tw", "-hk", "-mo"))
            tag = "zh-Hant" if traditional else "zh-Hans"
        for locale in available:
            # en-US and en-GB read en: the language decides, not the region.
            if locale.lower() == tag.lower() or locale.lower() == tag.split("-")[0].lower():
                return locale
    return default


@cache
def _babel_locale(locale: str) -> Locale:
    return Locale.parse(_folder(locale))


@lru_cache(maxsize=8192)
def _short(instant: datetime, locale: str, time_zone: str) -> str:
    return format_datetime(
        instant, "short", tzinfo=ZoneInfo(time_zone), locale=_babel_locale(locale)
    )


@dataclass(frozen=True)
class Words:
    """What templates call: `_()`, `ngettext()`, and times in the agent's zone."""

    locale: str
    time_zone: str

    @property
    def _catalogue(self) -> Translations:
        return translations(self.locale)

    def gettext(self, message: str, **values: Any) -> str:
        said = self._catalogue.gettext(message)
        return said % values if values else said

    def ngettext(self, singular: str, plural: str, n: int, **values: Any) -> str:
        said = self._catalogue.ngettext(singular, plural, n)
        return said % {"num": n, **values}

    @property
    def babel_locale(self) -> Locale:
        return _babel_locale(self.locale)

    def when(self, instant: datetime | None) -> str:
        """An instant in the agent's zone, e.g. `2026/12/3 10:00` or `Dec 3, 2026, 10:00 AM`."""
        if instant is None:
            return "-"
        # To the minute, as shown: every page drawn after a change shows the same
        # instants again (docs/benchmarks.md, "The agents' workspace").
        return _short(instant.replace(second=0, microsecond=0), self.locale, self.time_zone)

    def language(self, code: str) -> str:
        """A language's name in the agent's language, e.g. zh-TW as 中文 (繁體, 台灣)."""
        try:
            named = Locale.parse(code.replace("-", "_")).get_display_name(self.babel_locale)
        except (ValueError, TypeError, UnknownLocaleError):
            return code
        return named or code

    def duration(self, seconds: float) -> str:
        return format_timedelta(timedelta(seconds=seconds), threshold=1.1, locale=self.babel_locale)
