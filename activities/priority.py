"""Task-queue priority: the one adapter around Temporal's UpdateWorkflowExecutionOptions.

The server serves a task queue's backlog by priority key, lowest first (priority keys
1-5, on by default). The API raises a ticket before it hands the ticket a person's input,
and the ticket settles back through `settle_priority` once that input is stored
(workflows.policy.TaskPriorities, docs/scaling.md).
"""

from __future__ import annotations

import temporalio.api.common.v1 as common
import temporalio.api.workflow.v1 as workflow_api
import temporalio.api.workflowservice.v1 as service
from google.protobuf.field_mask_pb2 import FieldMask
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from workflows import activity_names as names
from workflows.contracts import PriorityChange


async def set_priority(client: Client, workflow_id: str, priority_key: int) -> bool:
    """Set the workflow's priority key for the tasks it schedules from now on. False where
    the server has none: the time-skipping test server answers UNIMPLEMENTED."""
    try:
        await client.workflow_service.update_workflow_execution_options(
            service.UpdateWorkflowExecutionOptionsRequest(
                namespace=client.namespace,
                workflow_execution=common.WorkflowExecution(workflow_id=workflow_id),
                workflow_execution_options=workflow_api.WorkflowExecutionOptions(
                    priority=common.Priority(priority_key=priority_key)
                ),
                update_mask=FieldMask(paths=["priority"]),
            )
        )
    except RPCError as error:
        if error.status is RPCStatusCode.UNIMPLEMENTED:
            return False
        raise
    return True


# Answers that another attempt would only repeat: the ticket is gone or closed, or the
# server refuses the key.
_FINAL = frozenset(
    {
        RPCStatusCode.NOT_FOUND,
        RPCStatusCode.FAILED_PRECONDITION,
        RPCStatusCode.INVALID_ARGUMENT,
        RPCStatusCode.PERMISSION_DENIED,
    }
)


class TicketPriority:
    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name=names.SETTLE_PRIORITY)
    async def settle_priority(self, change: PriorityChange) -> bool:
        """The calling ticket sets its own priority: setting it twice is the same as once."""
        try:
            return await set_priority(self._client, change.ticket_id, change.priority_key)
        except RPCError as error:
            if error.status in _FINAL:
                raise ApplicationError(
                    error.message, type="PriorityRefused", non_retryable=True
                ) from error
            raise
