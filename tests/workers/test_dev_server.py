"""Search attributes on real servers: the dev server as temporal-dev.yml declares it, and
the registration helper that tests and real clusters use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.common import SearchAttributeIndexedValueType as IndexedType
from temporalio.testing import WorkflowEnvironment

from tests.codec_keys import CONVERTER
from tests.conftest import TEMPORAL_TEST_SERVER
from workers.cluster import register_search_attributes, registered_search_attributes
from workflows.search_attributes import ALL, CLI_TYPE_NAMES, cli_declarations


def as_cli_types(registered: dict[str, int]) -> dict[str, str]:
    return {
        name: CLI_TYPE_NAMES[IndexedType(kind)]
        for name, kind in registered.items()
        if name in cli_declarations()
    }


async def test_dev_server_has_every_ticket_attribute_with_its_type(
    dev_env: WorkflowEnvironment,
) -> None:
    registered = await registered_search_attributes(dev_env.client, dev_env.client.namespace)
    assert as_cli_types(registered) == cli_declarations()


async def test_registering_on_the_dev_server_is_a_no_op(dev_env: WorkflowEnvironment) -> None:
    # The yml registered everything at start; the helper `make dev` also runs must agree.
    assert await register_search_attributes(dev_env.client, dev_env.client.namespace) == []


def test_dev_server_runs_sqlite_in_wal_mode(
    dev_env: WorkflowEnvironment, dev_db_path: Path
) -> None:
    # The pragma flags from the yml reached the server: WAL keeps a -wal file beside the db.
    assert dev_db_path.exists()
    assert dev_db_path.with_name(dev_db_path.name + "-wal").exists()


@pytest.fixture
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=TEMPORAL_TEST_SERVER,
        data_converter=CONVERTER,
    )
    try:
        yield env
    finally:
        await env.shutdown()


async def test_register_search_attributes_is_idempotent(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    # This server cannot list search attributes, so the helper adds them one by one and
    # reads "already exists" as present; the types are checked on the dev server above.
    client = time_skipping_env.client
    added = await register_search_attributes(client, client.namespace)
    assert added == sorted(key.name for key in ALL)
    assert await register_search_attributes(client, client.namespace) == []
