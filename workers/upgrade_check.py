"""Before an upgrade that retires a ticket's patch branches: which tickets could still
need them.

A `workflow.patched` branch guards a change for the runs that began before it. Once no
running ticket began before the build that made the change, the old branch is dead and
may go (docs/upgrades.md, "Retiring a patch"). Pinned tickets never meet a later build,
so with worker versioning this matters only for a ticket moved to auto-upgrade; without
it, every running ticket replays on the new code. This counts them through visibility:
ticket ids only, no payloads, so no key is needed to read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import temporalio.api.workflowservice.v1 as wsv1
from temporalio.api.deployment.v1 import WorkerDeploymentVersion
from temporalio.client import Client

TICKET_WORKFLOW = "TicketWorkflow"
SAMPLE = 20


class UnknownBuild(LookupError):
    """The deployment has no such build."""


@dataclass(frozen=True)
class OlderTickets:
    since: datetime
    count: int
    sample: list[str]  # a few of their ids, to look at in the UI


async def build_started(client: Client, deployment: str, build_id: str) -> datetime:
    """When the build first took new tickets (became current), else when it was created."""
    try:
        described = await client.workflow_service.describe_worker_deployment_version(
            wsv1.DescribeWorkerDeploymentVersionRequest(
                namespace=client.namespace,
                deployment_version=WorkerDeploymentVersion(
                    deployment_name=deployment, build_id=build_id
                ),
            )
        )
    except Exception as error:  # the server's NotFound, or an older server's refusal
        raise UnknownBuild(f"deployment {deployment!r} has no build {build_id!r}") from error
    info = described.worker_deployment_version_info
    stamp = info.first_activation_time if info.HasField("first_activation_time") else None
    return (stamp or info.create_time).ToDatetime(tzinfo=UTC)


def older_tickets_query(task_queue: str, since: datetime) -> str:
    return (
        f"WorkflowType = '{TICKET_WORKFLOW}' AND ExecutionStatus = 'Running' "
        f"AND TaskQueue = '{task_queue}' "
        f"AND StartTime < '{since.astimezone(UTC).isoformat().replace('+00:00', 'Z')}'"
    )


async def tickets_started_before(client: Client, task_queue: str, since: datetime) -> OlderTickets:
    """Running tickets (closed ones in their feedback window included) that began before
    `since`."""
    query = older_tickets_query(task_queue, since)
    count = (await client.count_workflows(query)).count
    sample = []
    async for execution in client.list_workflows(query, limit=SAMPLE):
        sample.append(execution.id)
    return OlderTickets(since, count, sample)


def report(found: OlderTickets) -> str:
    when = found.since.astimezone(UTC).isoformat(timespec="seconds")
    if not found.count:
        return f"no running ticket began before {when}: its patch branches may be retired"
    lines = [f"{found.count} running tickets began before {when}; e.g."]
    lines += [f"  {ticket_id}" for ticket_id in found.sample]
    return "\n".join(lines)
