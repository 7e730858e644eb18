"""PostgreSQL connection pool and schema migrations.

Migrations are the numbered `activities/migrations/NNNN_name.sql` files, applied in
order, each in its own transaction, and recorded in `schema_migrations` with a checksum.
Every worker calls `migrate()` at start-up; a session advisory lock makes concurrent
start-ups take turns instead of racing on CREATE TABLE.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pydantic_core
import structlog

log = structlog.get_logger()

# Arbitrary but fixed: every ticketflow process must use the same key. ("tflow" in hex.)
MIGRATION_LOCK_KEY = 0x74666C6F77

_MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

# asyncpg's classes are generic only in the stubs, hence string aliases.
Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"
PoolConnection: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"


class MigrationError(RuntimeError):
    """The database's migration history does not match the migrations shipped."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def with_search_path(url: str, schema: str) -> str:
    """The URL whose connections use `schema` (a schema of one's own in a shared
    database): asyncpg passes unknown DSN query parameters on as server settings."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "search_path"]
    query.append(("search_path", schema))
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass(frozen=True)
class RunSchema:
    name: str
    url: str  # the database's URL, its connections in this schema


@contextlib.asynccontextmanager
async def schema_for_run(database_url: str, prefix: str) -> AsyncIterator[RunSchema]:
    """A fresh, empty schema `<prefix>_<random>` for one run (a test module, a bench) that
    must see only its own rows, in a database it may not add databases to (DATABASE_URL
    may name one it shares). Dropped with everything in it when the run ends."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE SCHEMA "{name}"')
    finally:
        await admin.close()
    try:
        yield RunSchema(name, with_search_path(database_url, name))
    finally:
        admin = await asyncpg.connect(database_url)
        try:
            await admin.execute(f'DROP SCHEMA "{name}" CASCADE')
        finally:
            await admin.close()


def encode_json(value: Any) -> str:
    # pydantic_core also serialises datetimes, enums, UUIDs and models that may sit in an
    # event's free-form `data`, where json.dumps would raise.
    text = pydantic_core.to_json(value).decode()
    if "\\u0000" in text:
        # jsonb cannot hold NUL; free-form text (a customer's snapshot, an agent's note)
        # keeps everything else, with U+FFFD where the NUL was.
        return pydantic_core.to_json(_without_nul(json.loads(text))).decode()
    return text


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    return value


async def _init_connection(conn: Connection) -> None:
    for typename in ("jsonb", "json"):
        await conn.set_type_codec(
            typename, schema="pg_catalog", encoder=encode_json, decoder=json.loads
        )


async def _keep_session(conn: Connection) -> None:
    """Release a connection without asyncpg's default reset query.

    That query (unlock all advisory locks, CLOSE ALL, UNLISTEN *, RESET ALL) costs a
    round trip on every release: a sixth of an event append. ticketflow leaves nothing
    in a session for it to clear: no SET, LISTEN or cursor outlives its call, and the
    one session lock (migrate()'s) is released in a finally. asyncpg still rolls back a
    transaction left open before it calls this.
    """


async def create_pool(database_url: str, *, min_size: int = 1, max_size: int = 10) -> Pool:
    """A pool whose json/jsonb columns take and return plain Python values."""
    pool = await asyncpg.create_pool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        server_settings={"application_name": "ticketflow"},
    )
    return pool


def load_migrations() -> list[Migration]:
    """The shipped migrations, in version order (a gap or duplicate number is a bug)."""
    found: list[Migration] = []
    for entry in resources.files("activities").joinpath("migrations").iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match is None:
            continue
        found.append(
            Migration(version=int(match.group(1)), name=entry.name, sql=entry.read_text("utf-8"))
        )
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(
            f"migrations must be numbered 0001, 0002, ... without gaps: {versions}"
        )
    return found


async def pending_migrations(pool: Pool) -> list[str]:
    """The shipped migrations this database lacks (all of them on a fresh one)."""
    shipped = load_migrations()
    exists = await pool.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return [m.name for m in shipped]
    applied = {row["version"] for row in await pool.fetch("SELECT version FROM schema_migrations")}
    return [m.name for m in shipped if m.version not in applied]


async def migrate(pool: Pool, through: int | None = None) -> list[str]:
    """Apply every migration not yet applied (up to version `through`, if given: the
    schema a previous build left); returns the names applied by this call."""
    migrations = [m for m in load_migrations() if through is None or m.version <= through]
    applied_now: list[str] = []
    async with pool.acquire() as conn:
        # A session lock (not a transaction lock) so that each migration can commit on
        # its own while the whole run stays exclusive.
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            await conn.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version    integer     PRIMARY KEY,
                    name       text        NOT NULL,
                    checksum   text        NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )
            rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
            applied = {row["version"]: row for row in rows}
            for migration in migrations:
                done = applied.get(migration.version)
                if done is not None:
                    if done["checksum"] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.name} changed after it was applied "
                            f"(as {done['name']}); add a new migration instead"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) "
                        "VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
                applied_now.append(migration.name)
                log.info("migration applied", migration=migration.name)
            unknown = sorted(set(applied) - {migration.version for migration in migrations})
            if unknown:
                # A newer worker already migrated: expected during a rolling deploy, and
                # migrations are written to be backward compatible, so only say so.
                log.warning("database has newer migrations than this code", versions=unknown)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied_now
