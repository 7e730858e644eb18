"""The table of actions feeds the routes, the CLI and docs/actions.md alike."""

from __future__ import annotations

from pathlib import Path

from fastapi.routing import APIRoute

from api.action_docs import actions_markdown
from api.routes.actions import actions
from cli.tickets import COMMANDS
from workflows.contracts import ACTIONS, action_name
from workflows.ticket import TicketWorkflow
from workflows.ticket_rules import _ACTION_RULES

DOC = Path(__file__).parents[2] / "docs" / "actions.md"


def test_docs_page_is_written_from_the_table() -> None:
    assert DOC.read_text(encoding="utf-8") == actions_markdown(), (
        "docs/actions.md is stale: python -m api.action_docs > docs/actions.md"
    )


def test_every_action_has_its_route_command_and_handler() -> None:
    routes = {route.name: route.path for route in actions.routes if isinstance(route, APIRoute)}
    assert routes == {action_name(a): f"/v1/tickets/{{ticket_id}}/{a.route}" for a in ACTIONS}
    assert set(COMMANDS.values()) == set(ACTIONS)
    for action in ACTIONS:
        assert callable(getattr(TicketWorkflow, f"_on_{action_name(action)}", None)), action
    # Rules are optional (some actions always fit), but only for actions that exist.
    assert set(_ACTION_RULES) <= set(ACTIONS)
