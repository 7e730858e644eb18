"""`ticketflow keys create`: a new API key, printed once, and the entry (its SHA-256) for
the API's configuration. No API call: keys are configuration."""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from cli.http import ConsoleError
from cli.tables import dump, table


def add_keys_commands(commands: Any, handler: Callable[[argparse.Namespace], None]) -> None:
    keys = commands.add_parser("keys", help="API keys")
    verbs = keys.add_subparsers(dest="verb", required=True, metavar="VERB")
    create = verbs.add_parser("create", help="make a new API key and its configuration entry")
    create.add_argument(
        "--role",
        required=True,
        help="backend, agent, operator, manager, knowledge, department:<name> or partner:<name>",
    )
    create.add_argument("--name", default=None, help="who holds it (default: from the role)")
    create.add_argument("--json", action="store_true", help="print JSON instead of a table")
    create.set_defaults(handler=handler)


def create_key(args: argparse.Namespace) -> str:
    from api.access import hash_key, new_key
    from api.settings import ApiKeyEntry

    name = args.name or f"{args.role.replace(':', '-')}-{uuid.uuid4().hex[:6]}"
    key = new_key()
    try:
        entry = ApiKeyEntry(name=name, role=args.role, sha256=hash_key(key))
    except ValidationError as error:
        raise ConsoleError(
            "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in error.errors())
        ) from None
    config = entry.model_dump()
    if args.json:
        return dump({"key": key, **config})
    return "\n".join(
        [
            table([("key", key), ("name", name), ("role", args.role), ("sha256", entry.sha256)]),
            "",
            "Give the key to its holder now: only its SHA-256 is kept. Add the entry to",
            "the API's configuration, e.g. in the list of TICKETFLOW_API__KEYS:",
            "  " + json.dumps(config, ensure_ascii=False),
        ]
    )
