"""`ticketflow ticket open|show|act|customer-reply|thread|events|list`: tickets through
the HTTP API, one `act` command per action of the table of actions."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from api.schemas import ACTION_REQUESTS, CustomerReplyRequest
from cli.http import RETRIES_ON_503, Api, ConsoleError
from cli.options import add_model_options, common_options, request_body, summary
from cli.tables import columns, dump, excerpt, short, table, when
from workflows.contracts import ACTIONS, Action
from workflows.vocabulary import Category, Channel, Priority, TicketStatus, Tier

# `ticketflow ticket act ID <command>`: one per action, from the table of actions.
COMMANDS: dict[str, type[Action]] = {action.command: action for action in ACTIONS}


def add_ticket_commands(commands: Any, handler: Callable[[argparse.Namespace], None]) -> None:
    """`ticketflow ticket open|show|act|events|list` on the CLI's subparsers."""
    common = common_options()

    ticket = commands.add_parser("ticket", help="open, show, act on, list tickets (HTTP API)")
    verbs = ticket.add_subparsers(dest="verb", required=True, metavar="VERB")

    open_ = verbs.add_parser("open", parents=[common], help="open a ticket")
    open_.add_argument("--channel", required=True, choices=[c.value for c in Channel])
    open_.add_argument("--customer", required=True, help="opaque customer account id")
    open_.add_argument("--tier", choices=[t.value for t in Tier], default=Tier.STANDARD.value)
    open_.add_argument("--subject", required=True)
    open_.add_argument("--description", required=True)
    open_.add_argument(
        "--key",
        "--idempotency-key",
        dest="idempotency_key",
        default=None,
        help="the intake's idempotency key: the same key opens the same ticket "
        "(default: a new one, printed so a retry can reuse it)",
    )
    open_.add_argument("--locale", default=None)
    open_.add_argument("--time-zone", default=None, help="the customer's, e.g. Asia/Taipei")
    open_.add_argument("--attachment", action="append", default=None, dest="attachments")

    show = verbs.add_parser("show", parents=[common], help="a ticket's live state")
    show.add_argument("ticket_id")

    # Options go after the action (`act ID respond --message … --json`): a nested parser's
    # defaults would overwrite an option given before it.
    act = verbs.add_parser("act", help="act on a ticket")
    act.add_argument("ticket_id")
    kinds = act.add_subparsers(dest="action", required=True, metavar="ACTION")
    for command, action in COMMANDS.items():
        add_model_options(
            kinds.add_parser(command, parents=[common], help=summary(action)),
            ACTION_REQUESTS[action],
        )

    reply = verbs.add_parser(
        "customer-reply", parents=[common], help="what the customer answered on their channel"
    )
    reply.add_argument("ticket_id")
    add_model_options(reply, CustomerReplyRequest)

    thread = verbs.add_parser("thread", parents=[common], help="a ticket's conversation, in order")
    thread.add_argument("ticket_id")

    events = verbs.add_parser("events", parents=[common], help="a ticket's events")
    events.add_argument("ticket_id")
    events.add_argument("--after", type=int, default=0, help="only events after this seq")
    events.add_argument("--limit", type=int, default=100)

    list_ = verbs.add_parser("list", parents=[common], help="tickets from the read model")
    list_.add_argument("--status", action="append", choices=[s.value for s in TicketStatus])
    list_.add_argument("--priority", action="append", choices=[p.value for p in Priority])
    list_.add_argument("--category", action="append", choices=[c.value for c in Category])
    list_.add_argument("--tier", action="append", choices=[t.value for t in Tier])
    list_.add_argument("--department")
    list_.add_argument("--assignee")
    list_.add_argument("--unassigned", action=argparse.BooleanOptionalAction, default=None)
    list_.add_argument("--sort", choices=["attention", "newest"], default=None)
    list_.add_argument("--breached", action=argparse.BooleanOptionalAction, default=None)
    list_.add_argument("--paused", action=argparse.BooleanOptionalAction, default=None)
    list_.add_argument("--opened-after", help="ISO 8601, inclusive")
    list_.add_argument("--opened-before", help="ISO 8601, exclusive")
    list_.add_argument("--limit", type=int, default=50)
    list_.add_argument("--cursor")

    for parser in (ticket, open_, show, act, reply, thread, events, list_):
        parser.set_defaults(handler=handler)


def run_ticket(
    args: argparse.Namespace,
    default_url: Callable[[], str],
    time_zone: Callable[[], str] = lambda: "UTC",
) -> str:
    """Run one ticket command; returns what to print. Tables show times in `time_zone`
    (the policy's), with their UTC offset; `--json` keeps the API's UTC instants."""
    api = Api.from_args(args, default_url)

    def zone() -> ZoneInfo:
        return ZoneInfo(time_zone())

    match args.verb:
        case "open":
            body: dict[str, Any] = {
                "channel": args.channel,
                "customer_id": args.customer,
                "tier": args.tier,
                "subject": args.subject,
                "description": args.description,
            }
            if args.locale:
                body["locale"] = args.locale
            if args.time_zone:
                body["time_zone"] = args.time_zone
            if args.attachments:
                body["attachments"] = args.attachments
            key = args.idempotency_key or f"cli-{uuid.uuid4()}"
            try:
                result = api.call(
                    "POST",
                    "/v1/tickets",
                    body=body,
                    headers={"Idempotency-Key": key},
                    retries=RETRIES_ON_503,
                )
            except ConsoleError as error:
                if not error.worth_resending:
                    raise
                # Whatever happened, the same key opens the same ticket: say it.
                raise ConsoleError(f"{error} (run it again with --key {key})") from None
            result["idempotency_key"] = key
            return dump(result) if args.json else _opened_table(result, zone())
        case "show":
            result = api.call("GET", f"/v1/tickets/{args.ticket_id}")
            return dump(result) if args.json else _view_table(result, zone())
        case "act":
            action = COMMANDS[args.action]
            payload = request_body(args, ACTION_REQUESTS[action])
            # Sent with an id, so the retries below (and the person who reruns the command
            # with --action-id) apply it once.
            payload.setdefault("action_id", f"cli-{uuid.uuid4().hex}")
            path = f"/v1/tickets/{args.ticket_id}/{action.route}"
            try:
                result = api.call("POST", path, body=payload, retries=RETRIES_ON_503)
            except ConsoleError as error:
                if not error.worth_resending:
                    raise
                resend = f"--action-id {payload['action_id']}"
                raise ConsoleError(f"{error} (to send it again, applied once: {resend})") from None
            result["action_id"] = payload["action_id"]
            return dump(result) if args.json else _view_table(result, zone())
        case "customer-reply":
            path = f"/v1/tickets/{args.ticket_id}/customer-replies"
            body = request_body(args, CustomerReplyRequest)
            result = api.call("POST", path, body=body, retries=RETRIES_ON_503)
            return dump(result) if args.json else table(list(result.items()))
        case "thread":
            result = api.call("GET", f"/v1/tickets/{args.ticket_id}/thread")
            return dump(result) if args.json else _thread_table(result, zone())
        case "events":
            params = [("after_seq", str(args.after)), ("limit", str(args.limit))]
            result = api.call("GET", f"/v1/tickets/{args.ticket_id}/events", params=params)
            return dump(result) if args.json else _events_table(result, zone())
        case "list":
            result = api.call("GET", "/v1/tickets", params=_list_params(args))
            return dump(result) if args.json else _list_table(result, zone())
    raise ConsoleError(f"unknown command {args.verb!r}")  # pragma: no cover - argparse


def _list_params(args: argparse.Namespace) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    for name in ("status", "priority", "category", "tier"):
        params += [(name, value) for value in getattr(args, name) or []]
    for name in ("department", "assignee", "sort", "opened_after", "opened_before", "cursor"):
        if getattr(args, name):
            params.append((name, getattr(args, name)))
    for name in ("breached", "unassigned", "paused"):
        if getattr(args, name) is not None:
            params.append((name, "true" if getattr(args, name) else "false"))
    params.append(("limit", str(args.limit)))
    return params


def _classification(value: dict[str, Any]) -> str:
    return f"{value['category']} / {value['topic']} / {value['priority']}"


def _deadline_rows(deadlines: dict[str, Any], zone: ZoneInfo) -> list[tuple[str, Any]]:
    return [
        (f"  {name.replace('_', ' ')}", when(due, zone))
        for name, due in deadlines.items()
        if due is not None
    ] or [("  (none)", None)]


def _next_deadline(view: dict[str, Any], zone: ZoneInfo) -> str | None:
    """The earliest promise still to keep, or nothing (resolved, closed, paused)."""
    name = view.get("next_deadline")
    if name is None:
        return None
    return f"{name.replace('_', ' ')} {when(view.get('next_deadline_at'), zone) or ''}".rstrip()


def _opened_table(result: dict[str, Any], zone: ZoneInfo) -> str:
    rows: list[tuple[str, Any]] = [
        ("ticket", result["ticket_id"]),
        ("created", result["created"]),
        ("key", result["idempotency_key"]),
        ("status", result["status"]),
        ("tags", result["tags"]),
        ("classification", _classification(result["classification"])),
        ("deadlines", ""),
        *_deadline_rows(result["deadlines"], zone),
    ]
    return table(rows)


def _view_table(view: dict[str, Any], zone: ZoneInfo) -> str:
    last = view.get("last_message")
    rows: list[tuple[str, Any]] = [
        ("ticket", view["ticket_id"]),
        ("status", view["status"]),
        ("subject", view["subject"]),
        (
            "customer",
            f"{view['customer_id']} ({view['tier']}, {view['channel']}, {view['locale']})",
        ),
        ("tag", view["tag"]),
        ("classification", _classification(view["classification"])),
        ("assignee", view["assignee"]),
        ("departments", view["departments"]),
        ("open work orders", view["open_work_orders"]),
        ("waiting for", view["waiting_for"]),
        ("sla breached", view["sla_breached"]),
        (
            "sla paused",
            f"since {when(view['sla_paused_since'], zone)}"
            if view.get("sla_paused_since")
            else f"no ({view.get('sla_paused_seconds', 0) / 3600:.2f} h paused in all)",
        ),
        ("next deadline", _next_deadline(view, zone)),
        ("escalated", view["escalated"]),
        ("root cause", view["root_cause"]),
        ("reopened", view["reopen_count"]),
        ("events", view["events_recorded"]),
        (
            "last message",
            None
            if last is None
            else f"{last['actor']['role']} {last['actor']['id']}: {excerpt(last['text'])}",
        ),
        ("deadlines", ""),
        *_deadline_rows(view["deadlines"], zone),
    ]
    if "action_id" in view:
        rows.append(("action id", view["action_id"]))
    return table(rows)


def _thread_table(thread: dict[str, Any], zone: ZoneInfo) -> str:
    rows = [
        (
            when(entry["at"], zone),
            f"{entry['actor']['role']} {entry['actor']['id']}",
            entry["audience"],
            entry["channel"] or "",
            excerpt(entry["text"], 80),
        )
        for entry in thread["entries"]
    ]
    if not rows:
        return "no words on this ticket yet"
    return _erased_note(thread) + columns(["at", "who", "for", "channel", "said"], rows)


def _erased_note(page: dict[str, Any]) -> str:
    if not page.get("erased"):
        return ""
    return "the customer's data was erased: what was said reads [erased]\n"


def _events_table(page: dict[str, Any], zone: ZoneInfo) -> str:
    rows = [
        (
            e["seq"],
            when(e["occurred_at"], zone),
            e["type"],
            f"{e['actor_id']} ({e['actor_role']})",
            short(e["data"]),
        )
        for e in page["events"]
    ]
    text = _erased_note(page) + columns(["seq", "occurred at", "type", "actor", "data"], rows)
    if page.get("next_after_seq") is not None:
        text += f"\nmore: --after {page['next_after_seq']}"
    return text


def _list_table(page: dict[str, Any], zone: ZoneInfo) -> str:
    rows = [
        (
            t["ticket_id"],
            f"{t['status']} (erased)" if t.get("erased") else t["status"],
            t["priority"],
            t["tag"],
            t["tier"],
            t["departments"],
            when(t["opened_at"], zone),
            "yes" if t["sla_breached"] else "",
        )
        for t in page["items"]
    ]
    headers = ["ticket", "status", "prio", "tag", "tier", "departments", "opened at", "breached"]
    text = columns(headers, rows) if rows else "no tickets match"
    if page.get("next_cursor"):
        text += f"\nmore: --cursor {page['next_cursor']}"
    return text
