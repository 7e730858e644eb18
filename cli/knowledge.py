"""`ticketflow knowledge list|show|put|delete|import|suggest`: FAQ entries and reply
scripts through the HTTP API."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli.http import Api, ConsoleError
from cli.options import common_options
from cli.tables import dump, table
from workflows.vocabulary import Category


def add_knowledge_commands(commands: Any, handler: Callable[[argparse.Namespace], None]) -> None:
    """`ticketflow knowledge list|show|put|delete|import` and `... suggest TICKET`."""
    common = common_options()
    knowledge = commands.add_parser("knowledge", help="FAQ entries and reply scripts (HTTP API)")
    verbs = knowledge.add_subparsers(dest="verb", required=True, metavar="VERB")
    listing = verbs.add_parser("list", parents=[common], help="entries, optionally filtered")
    listing.add_argument("--kind", choices=["faq", "script"])
    listing.add_argument("--category", choices=[c.value for c in Category])
    show = verbs.add_parser("show", parents=[common], help="one entry, every locale")
    show.add_argument("entry_id")
    put = verbs.add_parser("put", parents=[common], help="create or replace an entry")
    put.add_argument("entry_id")
    put.add_argument("--file", required=True, help="the entry as JSON (the shape `show` prints)")
    delete = verbs.add_parser("delete", parents=[common], help="remove an entry")
    delete.add_argument("entry_id")
    load = verbs.add_parser("import", parents=[common], help="entries from a .json or .csv file")
    load.add_argument("file")
    suggest = verbs.add_parser("suggest", parents=[common], help="what fits a ticket, best first")
    suggest.add_argument("ticket_id")
    suggest.add_argument("-k", type=int, default=5)
    knowledge.set_defaults(handler=handler)


def run_knowledge(args: argparse.Namespace, default_url: Callable[[], str]) -> str:
    api = Api.from_args(args, default_url)
    match args.verb:
        case "list":
            params = [(n, getattr(args, n)) for n in ("kind", "category") if getattr(args, n)]
            found = api.call("GET", "/v1/knowledge", params=params)
            return dump(found) if args.json else table(
                [(e["entry_id"], f"{e['kind']} · {e['category']}/{e['topic']} · "
                  f"{e['variants']['zh-Hans']['question']}") for e in found]
            )  # fmt: skip
        case "show":
            return dump(api.call("GET", f"/v1/knowledge/{args.entry_id}"))
        case "put":
            body = json.loads(Path(args.file).read_text("utf-8"))
            body.pop("entry_id", None)
            for field in ("version", "updated_at", "updated_by"):
                body.pop(field, None)
            saved = api.call("PUT", f"/v1/knowledge/{args.entry_id}", body=body)
            return (
                dump(saved)
                if args.json
                else table([("saved", f"{saved['entry_id']} v{saved['version']}")])
            )
        case "delete":
            api.call("DELETE", f"/v1/knowledge/{args.entry_id}", as_text=True)
            return table([("deleted", args.entry_id)])
        case "import":
            path = Path(args.file)
            kind = "text/csv" if path.suffix.lower() == ".csv" else "application/json"
            done = api.call(
                "POST",
                "/v1/knowledge/import",
                content=path.read_bytes(),
                headers={"Content-Type": kind},
            )
            return table([("imported", done["imported"])])
        case "suggest":
            found = api.call(
                "GET", f"/v1/tickets/{args.ticket_id}/suggestions", params=[("k", str(args.k))]
            )
            return dump(found) if args.json else table(
                [(s["entry_id"], f"{s['score']:.4f} · {s['title']} · {s['reason']}")
                 for s in found["suggestions"]]
            )  # fmt: skip
    raise ConsoleError(f"unknown command {args.verb!r}")  # pragma: no cover - argparse
