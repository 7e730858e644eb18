"""The workspace's catalogues kept in step with its code (`make catalogues`, i.e.
`python -m api.workspace.catalogues`).

Every string marked in the code (`babel.cfg`: `N_`/`_` in Python, `_`/`gettext`/`ngettext`
in the templates) is extracted and merged into each language's
`locale/<locale>/LC_MESSAGES/messages.po`: translations are kept, new (or reworded)
strings arrive empty and read in English until translated, strings the code no longer
uses are dropped and printed with their translation (git keeps them too). A file is
rewritten only when its messages changed, so a run over up-to-date catalogues changes
nothing. What still needs a translator is printed; `--check` writes nothing and fails if
a catalogue is out of date or incomplete (for CI).

Plurals: `ngettext("%(num)d ticket", "%(num)d tickets", n)` in a template (`Words.ngettext`
passes the count as `num`). A `{# Translators: ... #}` (or `# Translators: ...`) comment
just above a marked string reaches the translator.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babel import Locale
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po

from api.settings import WorkspaceSettings
from api.workspace import i18n

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MAPPING = HERE / "babel.cfg"
LOCALES = HERE / "locale"
# Locations in the catalogues read from the repository's root, e.g. api/workspace/queue.py.
PREFIX = HERE.relative_to(ROOT).as_posix()
# A comment starting so, just above a marked string, reaches the translator.
COMMENT_TAGS = ("Translators:",)
# Header lines that change on every run or every Babel release, not with the messages.
_VOLATILE = ('"POT-Creation-Date:', '"PO-Revision-Date:', '"Generated-By:')


class ExtractionError(Exception):
    """A marked string the catalogues cannot hold (an empty msgid)."""


def mapping() -> tuple[list[tuple[str, str]], dict[str, dict[str, Any]]]:
    """babel.cfg read: (pattern, extractor) pairs and each pattern's options."""
    with MAPPING.open(encoding="utf-8") as config:
        # Babel's frontend is not annotated; the shapes are its documented ones.
        method_map, options_map = parse_mapping_cfg(config, str(MAPPING))  # type: ignore[no-untyped-call]
    return method_map, options_map


def extract() -> Catalog:
    """Every marked string of the workspace, in file order, as a template catalogue."""
    method_map, options_map = mapping()
    template = Catalog(domain=i18n.DOMAIN, fuzzy=False)
    for filename, lineno, message, comments, context in extract_from_dir(
        HERE, method_map, options_map, comment_tags=COMMENT_TAGS, strip_comment_tags=True
    ):
        where = f"{PREFIX}/{Path(filename).as_posix()}"
        if not message or (isinstance(message, tuple) and not all(message)):
            raise ExtractionError(f"{where}:{lineno}: an empty string is marked for translation")
        template.add(message, None, [(where, lineno)], auto_comments=comments, context=context)
    return template


def locales() -> list[str]:
    """The interface's languages (settings), and any other catalogue already on disk."""
    on_disk = (
        sorted(folder.name.replace("_", "-") for folder in LOCALES.iterdir() if folder.is_dir())
        if LOCALES.is_dir()
        else []
    )
    listed = WorkspaceSettings().locales
    return [*listed, *(locale for locale in on_disk if locale not in listed)]


def po_path(locale: str) -> Path:
    """Where the locale's catalogue lives in this checkout (the one i18n reads)."""
    path = i18n.catalogue_path(locale)
    if not isinstance(path, Path):
        raise RuntimeError(f"api.workspace is not a directory on disk: {path!r}")
    return path


def _new(locale: str) -> Catalog:
    return Catalog(
        locale=Locale.parse(locale.replace("-", "_")),
        domain=i18n.DOMAIN,
        header_comment=(
            f"# The agents' workspace (api/workspace) in {locale}.\n"
            "# `make catalogues` adds and removes the messages; translators write msgstr."
        ),
        project="ticketflow",
        version="workspace",
        last_translator="ticketflow",
        language_team=locale,
        fuzzy=False,
    )


def read(locale: str) -> Catalog | None:
    path = po_path(locale)
    if not path.is_file():
        return None
    with path.open("rb") as po:
        return read_po(
            po,
            locale=Locale.parse(locale.replace("-", "_")),
            domain=i18n.DOMAIN,
            abort_invalid=True,
        )


def render(catalog: Catalog) -> str:
    out = io.BytesIO()
    # No line numbers: a line added above a string must not rewrite every catalogue.
    write_po(out, catalog, include_lineno=False, ignore_obsolete=True, include_previous=True)
    return out.getvalue().decode("utf-8")


def _stable(text: str | None) -> str | None:
    if text is None:
        return None
    return "\n".join(line for line in text.splitlines() if not line.startswith(_VOLATILE))


def missing(catalog: Catalog) -> list[Message]:
    """Messages shown in English for want of a translation (empty or fuzzy)."""
    found = []
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy or not all(strings):
            found.append(message)
    return found


@dataclass(frozen=True)
class Update:
    locale: str
    path: Path
    catalog: Catalog
    text: str
    changed: bool
    added: list[str]
    dropped: list[Message]


def update(locale: str, template: Catalog) -> Update:
    """The locale's catalogue merged with the template (nothing written)."""
    old = read(locale)
    catalog = read(locale) or _new(locale)
    before = {message.id for message in catalog if message.id}
    # No fuzzy matching: its guesses (e.g. "Apply filters" from "Filters") are hidden at
    # run time anyway, and a translator would have to find and clear each flag.
    catalog.update(template, no_fuzzy_matching=True, update_creation_date=False)
    after = {message.id for message in catalog if message.id}
    path = po_path(locale)
    old_text = render(old) if old is not None else None
    text = render(catalog)
    changed = old is None or _stable(old_text) != _stable(text)
    if changed:
        catalog.creation_date = template.creation_date
        text = render(catalog)
    return Update(
        locale,
        path,
        catalog,
        text,
        changed,
        added=sorted(str(msgid) for msgid in after - before),
        dropped=[message for message in catalog.obsolete.values() if message.id],
    )


def plan() -> list[Update]:
    """Every locale's update, computed before anything is written."""
    template = extract()
    return [update(locale, template) for locale in locales()]


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".po.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.workspace.catalogues")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; fail if a catalogue is out of date or has untranslated strings",
    )
    args = parser.parse_args(argv)
    updates = plan()
    if not args.check:
        for step in updates:
            if step.changed:
                _write(step.path, step.text)
    incomplete = False
    for step in updates:
        shown = step.path.relative_to(ROOT)
        verb = ("out of date" if args.check else "updated") if step.changed else "up to date"
        print(f"{step.locale}: {shown} {verb} (+{len(step.added)} -{len(step.dropped)})")
        for message in step.dropped:
            print(f"  dropped: {message.id!r} (was {message.string!r})")
        for message in missing(step.catalog):
            incomplete = True
            state = "fuzzy" if message.fuzzy else "untranslated"
            where = ", ".join(sorted({filename for filename, _ in message.locations}))
            print(f"  {state}: {message.id!r} ({where})")
    if incomplete:
        print("translate the strings listed (msgstr in each .po; English is shown until then)")
    if args.check and (incomplete or any(step.changed for step in updates)):
        print("run `make catalogues` and translate what it lists", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
