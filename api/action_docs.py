"""docs/actions.md, written from the table of actions (`workflows.contracts.ACTIONS`).

    python -m api.action_docs > docs/actions.md

A test keeps the file equal to this output, so the page never drifts from the routes and
commands it describes.
"""

from __future__ import annotations

from api.schemas import ACTION_REQUESTS
from workflows.contracts import ACTIONS, Action, action_name


def _who(action: type[Action]) -> str:
    return "agent, operator, department (its own)" if action.for_departments else "agent, operator"


def _fields(action: type[Action]) -> str:
    body = ACTION_REQUESTS[action].model_fields
    return ", ".join(
        f"`{name}`" if field.is_required() else f"`{name}`?"
        for name, field in body.items()
        if name not in ("action_id", "actor_id")
    )


def _summary(action: type[Action]) -> str:
    return " ".join((action.__doc__ or "").split())


def actions_markdown() -> str:
    lines = [
        "# Actions on a ticket",
        "",
        "Written by `python -m api.action_docs` from the table of actions "
        "(`workflows/contracts.py`); do not edit by hand.",
        "",
        "Every action is a Temporal update of the ticket workflow (validated, then applied or "
        "refused with a reason), an HTTP route and a CLI command. Each also takes `action_id` "
        "(send it again after a timeout or a 503: applied once; the API returns the one it "
        "used in the `Action-Id` header) and, for agent and operator keys, `actor_id` (the "
        "person acting).",
        "",
        "| update | HTTP | CLI | who | body | what it does |",
        "|---|---|---|---|---|---|",
    ]
    for action in ACTIONS:
        lines.append(
            f"| `{action_name(action)}` | `POST /v1/tickets/{{id}}/{action.route}` "
            f"| `ticketflow ticket act ID {action.command}` | {_who(action)} "
            f"| {_fields(action)} | {_summary(action)} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(actions_markdown(), end="")
