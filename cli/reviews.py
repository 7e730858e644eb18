"""`ticketflow review start|list|show|<lead action>`: weekly reviews through the HTTP API
(the manager role), one command per lead action of the review's table."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable
from typing import Any

from api.schemas import REVIEW_REQUESTS
from cli.http import RETRIES_ON_503, Api
from cli.options import add_model_options, common_options, request_body, summary
from cli.tables import dump, table
from workflows.review_contracts import REVIEW_ACTIONS, ReviewAction

# `ticketflow review <command> WEEK`: one per review lead action, from the review table.
REVIEW_COMMANDS: dict[str, type[ReviewAction]] = {a.command: a for a in REVIEW_ACTIONS}


def add_review_commands(commands: Any, handler: Callable[[argparse.Namespace], None]) -> None:
    """`ticketflow review start|list|show|<lead action>` (the manager role)."""
    common = common_options()
    review = commands.add_parser("review", help="weekly reviews: sample, 5-Why, follow-ups")
    verbs = review.add_subparsers(dest="verb", required=True, metavar="VERB")
    start = verbs.add_parser("start", parents=[common], help="start a week's review (once)")
    start.add_argument("--week", default=None, help="ISO week, e.g. 2026-W48 (default: last)")
    start.add_argument(
        "--so-far",
        action="store_true",
        help="review a week not over yet (default: this one), where the API allows it "
        "(`make dev` does)",
    )
    verbs.add_parser("list", parents=[common], help="the reviews recorded")
    show = verbs.add_parser("show", parents=[common], help="a week's report")
    show.add_argument("week")
    show.add_argument("--markdown", action="store_true", help="the report as Markdown")
    for command, action in REVIEW_COMMANDS.items():
        parser = verbs.add_parser(command, parents=[common], help=summary(action))
        parser.add_argument("week")
        add_model_options(parser, REVIEW_REQUESTS[action])
    review.set_defaults(handler=handler)


def run_review(args: argparse.Namespace, default_url: Callable[[], str]) -> str:
    """Run one review command; returns what to print."""
    api = Api.from_args(args, default_url)
    match args.verb:
        case "start":
            body: dict[str, Any] = {"week": args.week} if args.week else {}
            if args.so_far:
                body["so_far"] = True
            result = api.call("POST", "/v1/reviews", body=body, retries=RETRIES_ON_503)
            return dump(result) if args.json else table(list(result.items()))
        case "list":
            listed = api.call("GET", "/v1/reviews")
            if args.json:
                return dump(listed)
            return table([(r["week"], "complete" if r["complete"] else "open") for r in listed])
        case "show" if args.markdown:
            text: str = api.call("GET", f"/v1/reviews/{args.week}/report.md", as_text=True)
            return text
        case "show":
            result = api.call("GET", f"/v1/reviews/{args.week}")
            return dump(result) if args.json else _review_table(result)
    action = REVIEW_COMMANDS[args.verb]
    payload = request_body(args, REVIEW_REQUESTS[action])
    payload.setdefault("action_id", f"cli-{uuid.uuid4().hex}")
    path = f"/v1/reviews/{args.week}/{action.route}"
    result = api.call("POST", path, body=payload, retries=RETRIES_ON_503)
    return (
        dump(result)
        if args.json
        else table([("review", result["review_id"]), ("waiting for", result["waiting_for"])])
    )


def _review_table(report: dict[str, Any]) -> str:
    rows: list[tuple[str, Any]] = [
        ("week", report["week"]),
        ("complete", report["complete"]),
        ("waiting for", report["waiting_for"]),
        ("sampled", f"{len(report['sample'])} of {report['candidates']}"),
    ]
    rows += [(t["ticket_id"], ", ".join(t["reasons"])) for t in report["sample"]]
    rows += [
        (f"follow-up #{f['number']}", f"{f['status']} · {f['owner']} · due {f['due']}")
        for f in report["follow_ups"]
    ]
    return table(rows)
