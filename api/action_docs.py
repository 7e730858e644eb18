"""docs/actions.md, written from the table of actions (`workflows.contracts.ACTIONS`).

    python -m api.action_docs > docs/actions.md

A test keeps the file equal to this output, so the page never drifts from the routes and
commands it describes.
"""

from __future__ import annotations

from pydantic import BaseModel

from api.schemas import ACTION_REQUESTS, REVIEW_REQUESTS, ActionRequest
from workflows.contracts import ACTIONS, Action, action_name
from workflows.review_contracts import REVIEW_ACTIONS, review_action_name


def _who(action: type[Action]) -> str:
    return "agent, operator, department (its own)" if action.for_departments else "agent, operator"


def _fields(request: type[ActionRequest]) -> str:
    body = request.model_fields
    return ", ".join(
        f"`{name}`" if field.is_required() else f"`{name}`?"
        for name, field in body.items()
        if name not in ("action_id", "actor_id")
    )


def _summary(action: type[BaseModel]) -> str:
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
            f"| {_fields(ACTION_REQUESTS[action])} | {_summary(action)} |"
        )
    lines += [
        "",
        "## The weekly review's actions",
        "",
        "Updates of the week's `WeeklyReviewWorkflow` (`workflows/review_contracts.py`), for "
        "review leads (manager and operator keys). `WEEK` is an ISO week such as `2026-W48`.",
        "",
        "| update | HTTP | CLI | body | what it does |",
        "|---|---|---|---|---|",
    ]
    for review_action in REVIEW_ACTIONS:
        lines.append(
            f"| `{review_action_name(review_action)}` "
            f"| `POST /v1/reviews/{{week}}/{review_action.route}` "
            f"| `ticketflow review {review_action.command} WEEK` "
            f"| {_fields(REVIEW_REQUESTS[review_action])} | {_summary(review_action)} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(actions_markdown(), end="")
