"""One route per action of the table of actions (`workflows.contracts.ACTIONS`): its body,
access rule, name and summary all come from the action's contract."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from api.access import STAFF, Caller, RoleKind, Rule
from api.client import new_action_id
from api.deps import ACTION_ID_HEADER, Services, Svc, TicketIdPath, known, require, summary_of
from api.errors import TICKET_RESPONSES, ApiError, translate
from api.routes.knowledge import with_script
from api.schemas import ACTION_REQUESTS, ActionRequest, to_action
from workflows.contracts import ACTIONS, Action, Respond, TicketView, action_name

actions = APIRouter(tags=["actions"], responses=TICKET_RESPONSES)


async def perform(
    svc: Services,
    ticket_id: str,
    action: type[Action],
    body: ActionRequest,
    caller: Caller,
    action_id: str,
) -> TicketView:
    """One action on a ticket, as `caller`, under `action_id` (sent again, applied once):
    what the action's route and the workspace's forms both do."""
    if body.actor_id is not None and caller.kind not in STAFF:
        raise ApiError(
            403,
            "forbidden",
            f"role {caller.role} acts as itself; only agent and operator keys name the "
            "person acting (actor_id)",
        )
    department = getattr(body, "department", None)
    if caller.kind is RoleKind.DEPARTMENT and department != caller.scope:
        raise ApiError(403, "forbidden", f"role {caller.role} may act only for {caller.scope}")
    sent = to_action(action, body, caller.actor(body.actor_id), action_id)
    if isinstance(sent, Respond):
        sent = await with_script(svc, known(ticket_id), sent)
    try:
        return await svc.call(svc.tickets.act(known(ticket_id), sent))
    except Exception as error:
        mapped = translate(error)
        if mapped is None or mapped.status != 503:
            raise
        # The update may still be applied later: the caller resends this id, and the
        # ticket applies it once.
        raise ApiError(
            503,
            mapped.code,
            f"{mapped.detail}; send the action again with action_id {action_id}",
            {**mapped.headers, ACTION_ID_HEADER: action_id},
        ) from error


def _action_route(action: type[Action]) -> Callable[..., Awaitable[TicketView]]:
    """The route of one action: its body comes from the contract, its rule from the
    contract's ClassVars (workflows.contracts.ACTIONS)."""

    async def act(
        ticket_id: TicketIdPath,
        body: ActionRequest,
        response: Response,
        svc: Svc,
        caller: Caller,
    ) -> TicketView:
        action_id = body.action_id or new_action_id()
        response.headers[ACTION_ID_HEADER] = action_id
        return await perform(svc, ticket_id, action, body, caller, action_id)

    # FastAPI reads the body model and the access rule from the annotations; they differ
    # per action, so this one function declares those of the action it serves.
    rule = Rule.PROGRESS if action.for_departments else Rule.ACT
    act.__annotations__["body"] = ACTION_REQUESTS[action]
    act.__annotations__["caller"] = Annotated[Caller, Depends(require(rule))]
    return act


for _action in ACTIONS:
    actions.add_api_route(
        f"/v1/tickets/{{ticket_id}}/{_action.route}",
        _action_route(_action),
        methods=["POST"],
        name=action_name(_action),
        summary=summary_of(_action),
        description=(
            f"The `{action_name(_action)}` update of the ticket. Answers the ticket's view "
            f"and the `{ACTION_ID_HEADER}` header: resend with that `action_id` after a "
            "timeout or a 503, and the action is applied once."
        ),
        response_model=TicketView,
    )
