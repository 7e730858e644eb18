"""`ticketflow ticket …` and `ticketflow keys create`: the terminal side of the HTTP API.

Ticket commands are HTTP calls with the caller's own API key, so an agent's terminal has
exactly the rights of the agent's key and needs no Temporal or database credentials:

    export TICKETFLOW_API_KEY=tfk_…              # `make dev` prints one per role
    ticketflow ticket open --channel email --customer c-1 --subject "无法提现" --description "…"
    ticketflow ticket act ticket-3f2a… respond --message "我们正在处理"
    ticketflow ticket list --status new --priority E --json

Tables for people by default, `--json` for scripts; an error is one line on stderr and a
non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import types
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError

from api.schemas import ACTION_REQUESTS, REVIEW_REQUESTS, CustomerReplyRequest
from workflows.contracts import ACTIONS, Action
from workflows.review_contracts import REVIEW_ACTIONS, ReviewAction
from workflows.vocabulary import Category, Channel, Priority, TicketStatus, Tier

if TYPE_CHECKING:
    import httpx

API_URL_ENV = "TICKETFLOW_API_URL"
API_KEY_ENV = "TICKETFLOW_API_KEY"
TIMEOUT_S = 30.0

# `ticketflow ticket act ID <command>`: one per action, from the table of actions.
COMMANDS: dict[str, type[Action]] = {action.command: action for action in ACTIONS}
# `ticketflow review <command> WEEK`: one per review lead action, from the review table.
REVIEW_COMMANDS: dict[str, type[ReviewAction]] = {a.command: a for a in REVIEW_ACTIONS}
# A 503 means Temporal did not answer in time; the action carries its id, so sending it
# again applies it once. A few tries cover a worker restart.
RETRIES_ON_503 = 3


class ConsoleError(Exception):
    """What went wrong, in one line for the terminal; `status` is the API's answer, None
    when none came (the API was not reached)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def worth_resending(self) -> bool:
        """Whether the same request sent again may go through: not when the API refused it
        (a 4xx says the key, the ticket or the request is wrong), only when it failed or no
        answer came, and the first one may or may not have been applied."""
        return self.status is None or self.status >= 500


# ---------------------------------------------------------------- parsers


def _common_options() -> argparse.ArgumentParser:
    """--json, --url and --api-key: every command that calls the HTTP API takes them."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    common.add_argument("--url", default=None, help=f"API base URL (default ${API_URL_ENV})")
    common.add_argument("--api-key", default=None, help=f"API key (default ${API_KEY_ENV})")
    return common


def add_ticket_commands(commands: Any, handler: Callable[[argparse.Namespace], None]) -> None:
    """`ticketflow ticket open|show|act|events|list` on the CLI's subparsers."""
    common = _common_options()

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
        _add_model_options(
            kinds.add_parser(command, parents=[common], help=_summary(action)),
            ACTION_REQUESTS[action],
        )

    reply = verbs.add_parser(
        "customer-reply", parents=[common], help="what the customer answered on their channel"
    )
    reply.add_argument("ticket_id")
    _add_model_options(reply, CustomerReplyRequest)

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


def add_knowledge_commands(commands: Any, handler: Callable[[argparse.Namespace], None]) -> None:
    """`ticketflow knowledge list|show|put|delete|import` and `... suggest TICKET`."""
    common = _common_options()
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
            return _dump(found) if args.json else _table(
                [(e["entry_id"], f"{e['kind']} · {e['category']}/{e['topic']} · "
                  f"{e['variants']['zh-Hans']['question']}") for e in found]
            )  # fmt: skip
        case "show":
            return _dump(api.call("GET", f"/v1/knowledge/{args.entry_id}"))
        case "put":
            body = json.loads(Path(args.file).read_text("utf-8"))
            body.pop("entry_id", None)
            for field in ("version", "updated_at", "updated_by"):
                body.pop(field, None)
            saved = api.call("PUT", f"/v1/knowledge/{args.entry_id}", body=body)
            return (
                _dump(saved)
                if args.json
                else _table([("saved", f"{saved['entry_id']} v{saved['version']}")])
            )
        case "delete":
            api.call("DELETE", f"/v1/knowledge/{args.entry_id}", as_text=True)
            return _table([("deleted", args.entry_id)])
        case "import":
            path = Path(args.file)
            kind = "text/csv" if path.suffix.lower() == ".csv" else "application/json"
            done = api.call(
                "POST",
                "/v1/knowledge/import",
                content=path.read_bytes(),
                headers={"Content-Type": kind},
            )
            return _table([("imported", done["imported"])])
        case "suggest":
            found = api.call(
                "GET", f"/v1/tickets/{args.ticket_id}/suggestions", params=[("k", str(args.k))]
            )
            return _dump(found) if args.json else _table(
                [(s["entry_id"], f"{s['score']:.4f} · {s['title']} · {s['reason']}")
                 for s in found["suggestions"]]
            )  # fmt: skip
    raise ConsoleError(f"unknown command {args.verb!r}")  # pragma: no cover - argparse


def add_review_commands(commands: Any, handler: Callable[[argparse.Namespace], None]) -> None:
    """`ticketflow review start|list|show|<lead action>` (the manager role)."""
    common = _common_options()
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
        parser = verbs.add_parser(command, parents=[common], help=_summary(action))
        parser.add_argument("week")
        _add_model_options(parser, REVIEW_REQUESTS[action])
    review.set_defaults(handler=handler)


def add_erase_command(commands: Any, handler: Callable[[argparse.Namespace], None]) -> None:
    """`ticketflow erase-customer CUSTOMER_ID` (the operator role)."""
    erase = commands.add_parser(
        "erase-customer",
        parents=[_common_options()],
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
        return _dump(result)
    counts = result["counts"]
    return _table(
        [
            ("tickets", str(len(result["tickets"]))),
            ("pseudonym", result["pseudonym"] or "-"),
            ("erased at", _when(result["erased_at"], ZoneInfo(time_zone()))),
            ("events redacted", str(counts["events"])),
            ("outbox rows redacted", str(counts["outbox_rows"])),
            ("undelivered, cancelled", str(counts["undelivered_cancelled"])),
            ("intake keys", str(counts["intake_keys"])),
            ("workflows deleted", str(result["workflows_deleted"])),
        ]
    )


def run_review(args: argparse.Namespace, default_url: Callable[[], str]) -> str:
    """Run one review command; returns what to print."""
    api = Api.from_args(args, default_url)
    match args.verb:
        case "start":
            body: dict[str, Any] = {"week": args.week} if args.week else {}
            if args.so_far:
                body["so_far"] = True
            result = api.call("POST", "/v1/reviews", body=body, retries=RETRIES_ON_503)
            return _dump(result) if args.json else _table(list(result.items()))
        case "list":
            listed = api.call("GET", "/v1/reviews")
            if args.json:
                return _dump(listed)
            return _table([(r["week"], "complete" if r["complete"] else "open") for r in listed])
        case "show" if args.markdown:
            text: str = api.call("GET", f"/v1/reviews/{args.week}/report.md", as_text=True)
            return text
        case "show":
            result = api.call("GET", f"/v1/reviews/{args.week}")
            return _dump(result) if args.json else _review_table(result)
    action = REVIEW_COMMANDS[args.verb]
    payload = _body(args, REVIEW_REQUESTS[action])
    payload.setdefault("action_id", f"cli-{uuid.uuid4().hex}")
    path = f"/v1/reviews/{args.week}/{action.route}"
    result = api.call("POST", path, body=payload, retries=RETRIES_ON_503)
    return (
        _dump(result)
        if args.json
        else _table([("review", result["review_id"]), ("waiting for", result["waiting_for"])])
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
    return _table(rows)


def _summary(action: type[Action] | type[ReviewAction]) -> str:
    first = (action.__doc__ or action.__name__).split("\n\n")[0]
    return " ".join(first.split())


def _add_model_options(parser: argparse.ArgumentParser, model: type[BaseModel]) -> None:
    """One option per body field, so the command line follows the API's models."""
    for name, field in model.model_fields.items():
        flag = "--" + name.replace("_", "-")
        annotation = _unwrap_optional(field.annotation)
        required = field.is_required()
        if annotation is bool:
            parser.add_argument(flag, dest=name, action="store_true", default=None)
        elif get_origin(annotation) is list:
            parser.add_argument(flag, dest=name, nargs="+", required=required, metavar="VALUE")
        elif isinstance(annotation, type) and issubclass(annotation, Enum):
            parser.add_argument(
                flag, dest=name, required=required, choices=[m.value for m in annotation]
            )
        else:
            parser.add_argument(flag, dest=name, required=required)


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        inner = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(inner) == 1:
            return _unwrap_optional(inner[0])
    if hasattr(annotation, "__metadata__"):  # Annotated[...]
        return _unwrap_optional(get_args(annotation)[0])
    return annotation


# ---------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Api:
    url: str
    key: str

    @classmethod
    def from_args(cls, args: argparse.Namespace, default_url: Callable[[], str]) -> Api:
        url = args.url or os.environ.get(API_URL_ENV) or default_url()
        key = args.api_key or os.environ.get(API_KEY_ENV)
        if not key:
            raise ConsoleError(
                f"no API key: set {API_KEY_ENV} or pass --api-key (`make dev` prints one per role)"
            )
        return cls(url=url.rstrip("/"), key=key)

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Sequence[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        retries: int = 0,
        as_text: bool = False,
        content: bytes | None = None,
    ) -> Any:
        """One call; a 503 is tried again `retries` times after its Retry-After (only for
        requests that are safe to resend: they carry their action id or reply id)."""
        import time

        import httpx  # here, not at the top: `ticketflow --help` stays quick

        for attempt in range(retries + 1):
            try:
                response = httpx.request(
                    method,
                    self.url + path,
                    json=body,
                    content=content,
                    params=list(params or []),
                    headers={"Authorization": f"Bearer {self.key}", **(headers or {})},
                    timeout=TIMEOUT_S,
                )
            except httpx.HTTPError as error:
                raise ConsoleError(
                    f"cannot reach the API at {self.url} ({error}); is `make dev` or "
                    "`ticketflow api` running?"
                ) from None
            if response.status_code == 503 and attempt < retries:
                time.sleep(min(float(response.headers.get("Retry-After", "1")), 30.0))
                continue
            break
        if response.status_code >= 400:
            raise ConsoleError(_describe_failure(response), response.status_code)
        return response.text if as_text else response.json()


def _describe_failure(response: httpx.Response) -> str:
    try:
        problem = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    detail = problem.get("detail", "")
    if isinstance(detail, list):
        detail = "; ".join(
            f"{'.'.join(str(p) for p in item.get('loc', [])[1:]) or 'body'}: {item.get('msg')}"
            for item in detail
        )
    hint = ""
    if response.status_code == 503 and response.headers.get("Retry-After"):
        hint = f" (retry in {response.headers['Retry-After']} s)"
    return f"{response.status_code} {problem.get('code', 'error')}: {detail}{hint}"


# ---------------------------------------------------------------- commands


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
            return _dump(result) if args.json else _opened_table(result, zone())
        case "show":
            result = api.call("GET", f"/v1/tickets/{args.ticket_id}")
            return _dump(result) if args.json else _view_table(result, zone())
        case "act":
            action = COMMANDS[args.action]
            payload = _body(args, ACTION_REQUESTS[action])
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
            return _dump(result) if args.json else _view_table(result, zone())
        case "customer-reply":
            path = f"/v1/tickets/{args.ticket_id}/customer-replies"
            body = _body(args, CustomerReplyRequest)
            result = api.call("POST", path, body=body, retries=RETRIES_ON_503)
            return _dump(result) if args.json else _table(list(result.items()))
        case "thread":
            result = api.call("GET", f"/v1/tickets/{args.ticket_id}/thread")
            return _dump(result) if args.json else _thread_table(result, zone())
        case "events":
            params = [("after_seq", str(args.after)), ("limit", str(args.limit))]
            result = api.call("GET", f"/v1/tickets/{args.ticket_id}/events", params=params)
            return _dump(result) if args.json else _events_table(result, zone())
        case "list":
            result = api.call("GET", "/v1/tickets", params=_list_params(args))
            return _dump(result) if args.json else _list_table(result, zone())
    raise ConsoleError(f"unknown command {args.verb!r}")  # pragma: no cover - argparse


def _body(args: argparse.Namespace, model: type[BaseModel]) -> dict[str, Any]:
    fields = {name: getattr(args, name, None) for name in model.model_fields}
    return {name: _objects(value) for name, value in fields.items() if value is not None}


def _objects(value: Any) -> Any:
    """List items written as JSON objects (`--follow-ups '{"kind": ...}'`) are objects."""
    if isinstance(value, list):
        return [json.loads(v) if isinstance(v, str) and v.startswith("{") else v for v in value]
    return value


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
        return _dump({"key": key, **config})
    return "\n".join(
        [
            _table([("key", key), ("name", name), ("role", args.role), ("sha256", entry.sha256)]),
            "",
            "Give the key to its holder now: only its SHA-256 is kept. Add the entry to",
            "the API's configuration, e.g. in the list of TICKETFLOW_API__KEYS:",
            "  " + json.dumps(config, ensure_ascii=False),
        ]
    )


# ---------------------------------------------------------------- output


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _table(rows: Sequence[tuple[str, Any]]) -> str:
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {_cell(value)}".rstrip() for label, value in rows)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def _classification(value: dict[str, Any]) -> str:
    return f"{value['category']} / {value['topic']} / {value['priority']}"


def _when(instant: str | None, zone: ZoneInfo) -> str | None:
    """An instant of the API (UTC) as people here read it: in the policy's zone, with the
    offset, so nobody converts from UTC in their head."""
    if instant is None:
        return None
    local = datetime.fromisoformat(instant).astimezone(zone)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M:%S} {offset[:3]}:{offset[3:]}"


def _deadline_rows(deadlines: dict[str, Any], zone: ZoneInfo) -> list[tuple[str, Any]]:
    return [
        (f"  {name.replace('_', ' ')}", _when(due, zone))
        for name, due in deadlines.items()
        if due is not None
    ] or [("  (none)", None)]


def _next_deadline(view: dict[str, Any], zone: ZoneInfo) -> str | None:
    """The earliest promise still to keep, or nothing (resolved, closed, paused)."""
    name = view.get("next_deadline")
    if name is None:
        return None
    return f"{name.replace('_', ' ')} {_when(view.get('next_deadline_at'), zone) or ''}".rstrip()


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
    return _table(rows)


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
            f"since {_when(view['sla_paused_since'], zone)}"
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
            else f"{last['actor']['role']} {last['actor']['id']}: {_excerpt(last['text'])}",
        ),
        ("deadlines", ""),
        *_deadline_rows(view["deadlines"], zone),
    ]
    if "action_id" in view:
        rows.append(("action id", view["action_id"]))
    return _table(rows)


def _excerpt(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _thread_table(thread: dict[str, Any], zone: ZoneInfo) -> str:
    rows = [
        (
            _when(entry["at"], zone),
            f"{entry['actor']['role']} {entry['actor']['id']}",
            entry["audience"],
            entry["channel"] or "",
            _excerpt(entry["text"], 80),
        )
        for entry in thread["entries"]
    ]
    if not rows:
        return "no words on this ticket yet"
    return _erased_note(thread) + _columns(["at", "who", "for", "channel", "said"], rows)


def _erased_note(page: dict[str, Any]) -> str:
    if not page.get("erased"):
        return ""
    return "the customer's data was erased: what was said reads [erased]\n"


def _width(text: str) -> int:
    """Columns on a terminal: 故障-提現 takes two per character, not one."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def _columns(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(h), *(_width(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(_pad(h.upper(), w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(_pad(c, w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _events_table(page: dict[str, Any], zone: ZoneInfo) -> str:
    rows = [
        (
            e["seq"],
            _when(e["occurred_at"], zone),
            e["type"],
            f"{e['actor_id']} ({e['actor_role']})",
            _short(e["data"]),
        )
        for e in page["events"]
    ]
    text = _erased_note(page) + _columns(["seq", "occurred at", "type", "actor", "data"], rows)
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
            _when(t["opened_at"], zone),
            "yes" if t["sla_breached"] else "",
        )
        for t in page["items"]
    ]
    headers = ["ticket", "status", "prio", "tag", "tier", "departments", "opened at", "breached"]
    text = _columns(headers, rows) if rows else "no tickets match"
    if page.get("next_cursor"):
        text += f"\nmore: --cursor {page['next_cursor']}"
    return text
