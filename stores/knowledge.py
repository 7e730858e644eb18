"""The agents' knowledge base: FAQ entries and reply scripts in PostgreSQL,
each with zh-Hans, zh-Hant and en variants, a category and a topic, and placeholders for
ticket data (never personal data: a text that holds an e-mail address or a phone number
is refused). A script renders in the customer's locale with the ticket's data, through a
sandboxed Jinja2 environment that knows only the placeholders below.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from datetime import datetime
from importlib import resources
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from activities.database import Pool
from workflows.primitives import Cleaned
from workflows.vocabulary import Category, Topic

LOCALES = ("zh-Hans", "zh-Hant", "en")
# What a script may say about the ticket: nothing that names or reaches the customer.
PLACEHOLDERS = frozenset({"ticket_id", "tag", "category", "topic", "priority", "sla_due"})
# E-mail addresses; mainland mobiles (138 0013 8000, 138-0013-8000); Taiwan mobiles
# (0912-345-678); international numbers (+852 9123 4567). Checked after NFKC, so
# full-width digits count too.
_PERSONAL = re.compile(
    r"[\w.+-]+@[\w-]+\.[\w.]+"
    r"|(?<!\d)1[3-9]\d[\s-]?\d{4}[\s-]?\d{4}(?!\d)"
    r"|(?<!\d)09\d{2}[\s-]?\d{3}[\s-]?\d{3}(?!\d)"
    r"|\+\d{1,3}[\s-]?\d{2,4}[\s-]?\d{3,4}[\s-]?\d{0,4}"
)
# A placeholder is `{{ name }}` and nothing else: no expressions, filters or statements
# (a template language would let an editor's text run code in the API).
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
_TEMPLATE_SYNTAX = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}")


def _personal(text: str) -> bool:
    return bool(_PERSONAL.search(unicodedata.normalize("NFKC", text)))


EntryId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{1,63}$")]


class Variant(BaseModel):
    question: Annotated[str, StringConstraints(min_length=1, max_length=300), Cleaned]
    answer: Annotated[str, StringConstraints(min_length=1, max_length=4000), Cleaned]


class EntryBody(BaseModel):
    """An entry as an editor writes it."""

    kind: Literal["faq", "script"]
    category: Category
    topic: Topic
    variants: dict[str, Variant]
    tags: list[Annotated[str, StringConstraints(max_length=60), Cleaned]] = Field(
        default_factory=list, max_length=30
    )

    @field_validator("tags")
    @classmethod
    def _no_personal_tags(cls, value: list[str]) -> list[str]:
        if any(_personal(tag) for tag in value):
            raise ValueError("no personal data in the knowledge base's tags")
        return value

    @field_validator("variants")
    @classmethod
    def _every_locale(cls, value: dict[str, Variant]) -> dict[str, Variant]:
        missing = [locale for locale in LOCALES if locale not in value]
        if missing:
            raise ValueError(f"variants needed for {', '.join(missing)}")
        unknown = sorted(set(value) - set(LOCALES))
        if unknown:
            raise ValueError(f"unknown locales {unknown}; known: {', '.join(LOCALES)}")
        for locale, variant in value.items():
            for text in (variant.question, variant.answer):
                if _personal(text):
                    raise ValueError(
                        f"{locale}: no personal data in the knowledge base (an e-mail "
                        "address or phone number); use a placeholder"
                    )
            check_placeholders(variant.answer, locale)
        return value


class Entry(EntryBody):
    entry_id: EntryId
    version: int = 1
    updated_at: datetime | None = None
    updated_by: str | None = None


class ImportedEntry(EntryBody):
    entry_id: EntryId

    @model_validator(mode="before")
    @classmethod
    def _from_flat(cls, value: object) -> object:
        # A CSV row: entry_id, kind, category, topic, tags ("a|b"), and per locale
        # question_<locale> / answer_<locale>.
        if isinstance(value, dict) and "variants" not in value:
            row = dict(value)
            row["variants"] = {
                locale: {
                    "question": row.pop(f"question_{locale}", ""),
                    "answer": row.pop(f"answer_{locale}", ""),
                }
                for locale in LOCALES
            }
            tags = row.get("tags")
            row["tags"] = [t for t in tags.split("|") if t] if isinstance(tags, str) else tags or []
            return row
        return value


def check_placeholders(text: str, locale: str) -> None:
    if _TEMPLATE_SYNTAX.search(_PLACEHOLDER.sub("", text)):
        raise ValueError(f"{locale}: placeholders are written {{{{ name }}}}, nothing more")
    unknown = {name for name in _PLACEHOLDER.findall(text)} - PLACEHOLDERS
    if unknown:
        raise ValueError(
            f"{locale}: unknown placeholders {sorted(unknown)}; use {', '.join(sorted(PLACEHOLDERS))}"
        )


def locale_of(locale: str | None) -> str:
    """The knowledge base's variant for a customer's locale (zh-TW → zh-Hant, en-GB → en)."""
    tag = (locale or "").replace("_", "-").lower()
    if tag.startswith(("zh-hant", "zh-tw", "zh-hk", "zh-mo")):
        return "zh-Hant"
    if tag.startswith("en"):
        return "en"
    return "zh-Hans"


class TicketFacts(BaseModel):
    """What a script may say about a ticket."""

    ticket_id: str
    tag: str
    category: str
    topic: str
    priority: str
    sla_due: datetime | None
    time_zone: str


def render(entry: Entry, locale: str | None, facts: TicketFacts) -> str:
    """The entry's answer in the customer's locale, with the ticket's data filled in."""
    chosen = locale_of(locale)
    babel_locale = {"zh-Hans": "zh_Hans_CN", "zh-Hant": "zh_Hant_TW", "en": "en"}[chosen]
    due = (
        format_datetime(
            facts.sla_due, "medium", tzinfo=ZoneInfo(facts.time_zone), locale=babel_locale
        )
        if facts.sla_due is not None
        else ""
    )
    values = facts.model_dump(exclude={"sla_due", "time_zone"}) | {"sla_due": due}
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), entry.variants[chosen].answer)


# ---------------------------------------------------------------- the store

_COLUMNS = "entry_id, kind, category, topic, variants, tags, version, updated_at, updated_by"
_UPSERT = f"""
    INSERT INTO knowledge_entries ({_COLUMNS})
    VALUES ($1, $2, $3, $4, $5, $6, 1, now(), $7)
    ON CONFLICT (entry_id) DO UPDATE SET
        kind = EXCLUDED.kind, category = EXCLUDED.category, topic = EXCLUDED.topic,
        variants = EXCLUDED.variants, tags = EXCLUDED.tags, deleted_at = NULL,
        version = knowledge_entries.version + 1, updated_at = now(),
        updated_by = EXCLUDED.updated_by
    RETURNING {_COLUMNS}
"""


def _entry(row: object) -> Entry:
    return Entry.model_validate(dict(row))  # type: ignore[call-overload]


def _upsert_args(entry_id: str, body: EntryBody, editor: str) -> tuple[Any, ...]:
    """`_UPSERT`'s parameters for one entry."""
    variants = {k: v.model_dump() for k, v in body.variants.items()}
    return (entry_id, body.kind, body.category.value, body.topic.value, variants, body.tags, editor)


class KnowledgeStore:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def entries(
        self, kind: str | None = None, category: str | None = None, topic: str | None = None
    ) -> list[Entry]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM knowledge_entries WHERE deleted_at IS NULL"
            " AND ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR category = $2)"
            " AND ($3::text IS NULL OR topic = $3) ORDER BY entry_id",
            kind,
            category,
            topic,
        )
        return [_entry(row) for row in rows]

    async def entry(self, entry_id: str) -> Entry | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM knowledge_entries WHERE entry_id = $1 AND deleted_at IS NULL",
            entry_id,
        )
        return None if row is None else _entry(row)

    async def create(self, entry_id: str, body: EntryBody, editor: str) -> Entry | None:
        """None if the id is taken (a live entry has it)."""
        if await self.entry(entry_id) is not None:
            return None
        return await self.put(entry_id, body, editor)

    async def put(self, entry_id: str, body: EntryBody, editor: str) -> Entry:
        row = await self._pool.fetchrow(_UPSERT, *_upsert_args(entry_id, body, editor))
        return _entry(row)

    async def delete(self, entry_id: str) -> bool:
        done = await self._pool.execute(
            "UPDATE knowledge_entries SET deleted_at = now(), version = version + 1,"
            " updated_at = now() WHERE entry_id = $1 AND deleted_at IS NULL",
            entry_id,
        )
        return done.endswith("1")

    async def import_entries(self, entries: list[ImportedEntry], editor: str) -> int:
        async with self._pool.acquire() as connection, connection.transaction():
            for entry in entries:
                await connection.execute(_UPSERT, *_upsert_args(entry.entry_id, entry, editor))
        return len(entries)

    async def generation(self) -> tuple[int, int]:
        """Changes when any entry does: what a cached index compares against."""
        # Every write raises an entry's version (deleting too): the sum moves with each.
        row = await self._pool.fetchrow(
            "SELECT count(*) AS n, COALESCE(sum(version), 0) AS versions FROM knowledge_entries"
        )
        assert row is not None
        return int(row["n"]), int(row["versions"])

    async def seed_if_empty(self) -> int:
        """The starter set (stores/data/knowledge_starter.json) into an empty base."""
        if await self._pool.fetchval("SELECT count(*) FROM knowledge_entries"):
            return 0
        return await self.import_entries(starter_entries(), "starter-set")

    async def script_uses(self, category: str, topic: str) -> dict[str, int]:
        """How often each script answered tickets of this category and topic."""
        rows = await self._pool.fetch(
            "SELECT e.data->>'script_id' AS entry_id, count(*) AS n FROM ticket_events e"
            " JOIN tickets t ON t.ticket_id = e.ticket_id"
            " WHERE e.type = 'agent_replied' AND e.data->>'script_id' IS NOT NULL"
            " AND t.category = $1 AND t.topic = $2 GROUP BY 1",
            category,
            topic,
        )
        return {row["entry_id"]: int(row["n"]) for row in rows}


def starter_entries() -> list[ImportedEntry]:
    text = resources.files("stores").joinpath("data/knowledge_starter.json").read_text("utf-8")
    return [ImportedEntry.model_validate(item) for item in json.loads(text)]


def parse_import(text: str, content_type: str) -> list[ImportedEntry]:
    """A JSON list of entries, or CSV with one column per locale's question and answer."""
    if "csv" in content_type:
        try:
            rows = list(csv.DictReader(io.StringIO(text)))
        except csv.Error as error:
            raise ValueError(f"CSV: {error}") from None
        return [ImportedEntry.model_validate(row) for row in rows]
    try:
        items = json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if not isinstance(items, list):
        raise ValueError("expected a JSON list of entries")
    return [ImportedEntry.model_validate(item) for item in items]
