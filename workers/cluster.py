"""Make a Temporal namespace ready for tickets: register the custom search attributes.

The dev server gets them from `temporal-dev.yml` at start; the time-skipping test server
and real clusters get them here. Safe to run any number of times:

    python -m workers.cluster          # against the envconfig connection (TEMPORAL_*)
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType as IndexedType
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

from workflows.search_attributes import ALL, CLI_TYPE_NAMES


class SearchAttributeConflict(Exception):
    """A name we need exists with another type; the server cannot change a type in place."""


async def registered_search_attributes(client: Client, namespace: str) -> dict[str, int]:
    """Every search attribute the namespace knows (system and custom): name -> index type."""
    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    return {**dict(response.system_attributes), **dict(response.custom_attributes)}


def _type_name(value: int) -> str:
    try:
        return CLI_TYPE_NAMES[IndexedType(value)]
    except (ValueError, KeyError):
        return str(IndexedValueType.Name(IndexedValueType.ValueType(value)))


async def register_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register the ticket's search attributes that are missing; return the names added."""
    try:
        present = await registered_search_attributes(client, namespace)
    except RPCError as error:
        if error.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        # The time-skipping test server can add but not list.
        return await _add_one_by_one(client, namespace)
    conflicts = [
        f"{key.name} is {_type_name(present[key.name])}, "
        f"expected {_type_name(key.indexed_value_type)}"
        for key in ALL
        if key.name in present and present[key.name] != int(key.indexed_value_type)
    ]
    if conflicts:
        raise SearchAttributeConflict(f"namespace {namespace!r}: " + "; ".join(conflicts))
    missing = [key for key in ALL if key.name not in present]
    if missing:
        try:
            await _add(client, namespace, missing)
        except RPCError as error:
            # Another process registering at the same moment is fine; anything else is not.
            if error.status != RPCStatusCode.ALREADY_EXISTS:
                raise
    return sorted(key.name for key in missing)


async def _add_one_by_one(client: Client, namespace: str) -> list[str]:
    added = []
    for key in ALL:
        try:
            await _add(client, namespace, [key])
        except RPCError as error:
            if error.status != RPCStatusCode.ALREADY_EXISTS:
                raise
        else:
            added.append(key.name)
    return sorted(added)


async def _add(client: Client, namespace: str, keys: Sequence[SearchAttributeKey[Any]]) -> None:
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={
                key.name: IndexedValueType.ValueType(int(key.indexed_value_type)) for key in keys
            },
        )
    )


async def _main() -> int:
    from workers.settings import ConfigurationError, load_settings
    from workers.temporal_client import connect_temporal

    try:
        settings = load_settings()
        client = await connect_temporal(settings)
        added = await register_search_attributes(client, client.namespace)
    except (ConfigurationError, SearchAttributeConflict, RPCError, RuntimeError) as error:
        print(f"ticketflow: {error}", file=sys.stderr)
        return 1
    names = ", ".join(added) if added else "none, all present"
    print(f"namespace {client.namespace!r}: registered {names}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_main()))
