"""`ticketflow erase-customer CUSTOMER_ID`: a customer's right to erasure through the
HTTP API (the operator role)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from cli.http import Api
from cli.options import common_options
from cli.tables import dump, table, when


def add_erase_command(commands: Any, handler: Callable[[argparse.Namespace], None]) -> None:
    """`ticketflow erase-customer CUSTOMER_ID` (the operator role)."""
    erase = commands.add_parser(
        "erase-customer",
        parents=[common_options()],
        help="erase a customer's personal data (their tickets must be closed)",
    )
    erase.add_argument("customer_id")
    erase.set_defaults(handler=handler)


def run_erase(
    args: argparse.Namespace,
    default_url: Callable[[], str],
    time_zone: Callable[[], str] = lambda: "UTC",
) -> str:
    api = Api.from_args(args, default_url)
    result = api.call("POST", "/v1/erasures", body={"customer_id": args.customer_id})
    if args.json:
        return dump(result)
    counts = result["counts"]
    return table(
        [
            ("tickets", str(len(result["tickets"]))),
            ("pseudonym", result["pseudonym"] or "-"),
            ("erased at", when(result["erased_at"], ZoneInfo(time_zone()))),
            ("events redacted", str(counts["events"])),
            ("outbox rows redacted", str(counts["outbox_rows"])),
            ("undelivered, cancelled", str(counts["undelivered_cancelled"])),
            ("intake keys", str(counts["intake_keys"])),
            ("workflows deleted", str(result["workflows_deleted"])),
        ]
    )
