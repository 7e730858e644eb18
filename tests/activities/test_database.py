"""Migrations against a real PostgreSQL: idempotent, safe to race, tamper-evident."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from activities.database import (
    MIGRATION_LOCK_KEY,
    MigrationError,
    Pool,
    create_pool,
    load_migrations,
    migrate,
    schema_for_run,
)


@pytest.fixture
async def fresh_database_url(database_url: str, pg_pool: Pool) -> AsyncIterator[str]:
    """An empty database on the same server, dropped afterwards."""
    name = f"migrate_{uuid.uuid4().hex}"
    try:
        await pg_pool.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.InsufficientPrivilegeError:
        pytest.skip("the DATABASE_URL role may not create databases")
    yield urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    await pg_pool.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_migrations_are_numbered_from_one() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "0001_event_store.sql"


async def test_migrate_is_rerunnable(pg_pool: Pool) -> None:
    # The session fixture already migrated: running again applies nothing and fails nothing.
    assert await migrate(pg_pool) == []
    assert await migrate(pg_pool) == []
    versions = await pg_pool.fetch("SELECT version FROM schema_migrations ORDER BY version")
    assert [row["version"] for row in versions] == [m.version for m in load_migrations()]


async def test_workers_starting_together_migrate_once(fresh_database_url: str) -> None:
    pools = [await create_pool(fresh_database_url, max_size=2) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(migrate(pool) for pool in pools))
        everything = [m.name for m in load_migrations()]
        # Exactly one worker applied the migrations; the others found them done.
        assert sorted(applied, key=len) == [[]] * (len(pools) - 1) + [everything]
        count = await pools[0].fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(everything)
    finally:
        for pool in pools:
            await pool.close()


async def test_a_changed_migration_is_refused(fresh_database_url: str) -> None:
    pool = await create_pool(fresh_database_url, max_size=1)
    try:
        await migrate(pool)
        await pool.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(pool)
        # The lock was released despite the failure: another session can take it.
        other = await asyncpg.connect(fresh_database_url)
        try:
            assert await other.fetchval("SELECT pg_try_advisory_lock($1)", MIGRATION_LOCK_KEY)
        finally:
            await other.close()
    finally:
        await pool.close()


async def test_jsonb_columns_take_and_return_python_values(pg_pool: Pool) -> None:
    value = {"departments": ["tech"], "n": 1, "nested": {"ok": True}, "text": "登錄"}
    assert await pg_pool.fetchval("SELECT $1::jsonb", value) == value
    # Stored as a JSON object, not as a JSON string holding an object.
    assert await pg_pool.fetchval("SELECT jsonb_typeof($1::jsonb)", value) == "object"
    assert json.loads(await pg_pool.fetchval("SELECT ($1::jsonb)::text", value)) == value


async def test_a_run_of_its_own_sees_only_its_schema_which_goes_with_it(
    database_url: str, pg_pool: Pool
) -> None:
    """The one schema-per-run helper (tests' modules and the bench): its URL's tables are
    its own, and the schema is dropped when the run ends, even when it fails."""
    with pytest.raises(RuntimeError, match="the run failed"):
        async with schema_for_run(database_url, "own") as schema:
            assert schema.name.startswith("own_")
            pool = await create_pool(schema.url, max_size=1)
            try:
                assert await pool.fetchval("SELECT current_schema()") == schema.name
                assert await pool.fetchval("SELECT to_regclass('ticket_events')") is None
                await migrate(pool)
                count = await pool.fetchval("SELECT count(*) FROM ticket_events")
                assert count == 0  # the session's tickets are in another schema
            finally:
                await pool.close()
            raise RuntimeError("the run failed")
    gone = await pg_pool.fetchval(
        "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1", schema.name
    )
    assert gone == 0


async def test_the_seen_signatures_table_comes_from_the_migrations(database_url: str) -> None:
    """Every table is created by activities/migrations/, the API's included."""
    async with schema_for_run(database_url, "signatures") as schema:
        pool = await create_pool(schema.url, max_size=1)
        try:
            await migrate(pool)
            assert await pool.fetchval("SELECT to_regclass('api_seen_signatures')") is not None
            index = "api_seen_signatures_seen_at"
            assert await pool.fetchval("SELECT to_regclass($1)", index) is not None
        finally:
            await pool.close()


async def test_a_database_whose_api_made_the_signatures_table_migrates_cleanly(
    database_url: str,
) -> None:
    """Before the table moved into the migrations, the API created it at start: such a
    database takes the new migration without an error, and keeps the signatures it holds."""
    async with schema_for_run(database_url, "signatures") as schema:
        pool = await create_pool(schema.url, max_size=1)
        try:
            [moved] = [m for m in load_migrations() if "api_seen_signatures" in m.sql]
            # As the previous build left it: every earlier migration, and the API's table.
            await migrate(pool, through=moved.version - 1)
            await pool.execute(
                "CREATE TABLE api_seen_signatures (signature text PRIMARY KEY,"
                " partner text NOT NULL, seen_at timestamptz NOT NULL DEFAULT now());"
                " CREATE INDEX api_seen_signatures_seen_at ON api_seen_signatures (seen_at)"
            )
            await pool.execute("INSERT INTO api_seen_signatures VALUES ('abc', 'sf-express')")
            assert await migrate(pool) == [m.name for m in load_migrations()[moved.version - 1 :]]
            assert await pool.fetchval("SELECT partner FROM api_seen_signatures") == "sf-express"
        finally:
            await pool.close()
