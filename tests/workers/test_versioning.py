"""Worker versioning on the real dev server: two builds of the worker at once, a ticket
opened before the rollout finishes on the old build, one opened after runs on the new."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime

import pytest
import temporalio.api.workflowservice.v1 as wsv1
from temporalio.client import Client
from temporalio.common import VersioningBehavior
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.database import Pool
from api.client import TicketClient
from tests.waiting import eventually
from workers.main import Workers, build_worker, let_long_workflows_upgrade
from workers.settings import DeploymentSettings
from workers.upgrade_check import UnknownBuild, build_started, tickets_started_before
from workflows.contracts import Close, Intake, Respond
from workflows.policy import ServicePolicy
from workflows.primitives import Actor
from workflows.surge import Findings, Investigation, SurgeInvestigationWorkflow
from workflows.surge_contracts import Openings
from workflows.vocabulary import TicketStatus

AGENT = Actor(id="agent-7", role="agent")


def intake() -> Intake:
    return Intake(
        idempotency_key=f"v-{uuid.uuid4().hex}",
        channel="email",
        customer_id=f"c-{uuid.uuid4().hex[:8]}",
        subject="会员怎么续费",
        description="请问会员到期后怎么续费?",
    )


async def make_current(client: Client, deployment: str, build_id: str) -> None:
    """Wait for the build's worker to poll, then route new workflows to it (what an operator
    does with `temporal worker deployment set-current-version`)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            described = await client.workflow_service.describe_worker_deployment(
                wsv1.DescribeWorkerDeploymentRequest(
                    namespace=client.namespace, deployment_name=deployment
                )
            )
            builds = {
                v.deployment_version.build_id
                for v in described.worker_deployment_info.version_summaries
            }
            if build_id in builds:
                break
        except Exception:
            if time.monotonic() > deadline:
                raise
        assert time.monotonic() < deadline, f"build {build_id} never polled"
        await asyncio.sleep(0.1)
    while True:
        try:
            await client.workflow_service.set_worker_deployment_current_version(
                wsv1.SetWorkerDeploymentCurrentVersionRequest(
                    namespace=client.namespace, deployment_name=deployment, build_id=build_id
                )
            )
            return
        except RPCError as error:
            # Refused until the new build polls every task queue type the old one does; and
            # the dev server answers "operation was canceled" when the deployment's own
            # workflow is still busy with the new build's registration (seen in CI).
            transient = ("missing active task queues", "operation was canceled")
            if not any(t in error.message for t in transient) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.1)


async def builds_of(client: Client, ticket_id: str) -> list[str]:
    """The build of every workflow task the ticket completed, in order."""
    history = await client.get_workflow_handle(ticket_id).fetch_history()
    return [
        e.workflow_task_completed_event_attributes.deployment_version.build_id
        for e in history.events
        if e.HasField("workflow_task_completed_event_attributes")
    ]


def versioned_worker(
    env: WorkflowEnvironment, queue: str, pool: Pool, deployment: str, build_id: str
) -> Workers:
    config = DeploymentSettings(name=deployment, build_id=build_id).worker_config()
    return build_worker(env.client, queue, pool, ServicePolicy(), deployment=config)


async def test_old_tickets_finish_on_the_old_build_new_ones_on_the_new(
    dev_env: WorkflowEnvironment, pg_pool: Pool
) -> None:
    client = dev_env.client
    queue, deployment = f"versioned-{uuid.uuid4()}", f"ticketflow-{uuid.uuid4().hex[:8]}"
    tickets = TicketClient(client, task_queue=queue, policy=ServicePolicy())
    async with versioned_worker(dev_env, queue, pg_pool, deployment, "v1"):
        await make_current(client, deployment, "v1")
        old = (await tickets.open(intake())).ticket_id
        await tickets.act(old, Respond(actor=AGENT, message="正在查看"))

        async with versioned_worker(dev_env, queue, pg_pool, deployment, "v2"):
            await make_current(client, deployment, "v2")
            new = (await tickets.open(intake())).ticket_id
            # Both builds serve at once: each ticket's next step runs on its own build.
            await tickets.act(old, Respond(actor=AGENT, message="还在处理"))
            closed = await tickets.act(
                old,
                Close(actor=AGENT, long_term_plan="下个版本支持", root_cause="需求缺口-會員續費"),
            )
            assert closed.status is TicketStatus.CLOSED
            await tickets.act(new, Respond(actor=AGENT, message="正在查看"))
            for ticket_id, build in ((old, "v1"), (new, "v2")):
                described = await client.get_workflow_handle(ticket_id).describe()
                info = described.raw_description.workflow_execution_info.versioning_info
                assert info.behavior == VersioningBehavior.PINNED.value
                assert info.deployment_version.build_id == build
                assert set(await builds_of(client, ticket_id)) == {build}
            # Before an upgrade that retires patch branches: the old ticket began before
            # v2 took new tickets, the new one did not.
            since = await build_started(client, deployment, "v2")
            assert await settles(client, queue, since, 1)
            assert (await tickets_started_before(client, queue, since)).sample == [old]
            with pytest.raises(UnknownBuild):
                await build_started(client, deployment, "v9")
            for ticket_id in (old, new):
                await client.get_workflow_handle(ticket_id).terminate("test done")
            assert await settles(client, queue, since, 0)


async def settles(client: Client, queue: str, since: datetime, count: int) -> bool:
    """Whether visibility comes to count `count` tickets begun before `since` (it trails
    the starts by a moment)."""
    counted = await eventually(
        lambda: tickets_started_before(client, queue, since),
        lambda found: found.count == count,
        within=10,
    )
    return counted.count == count


async def test_long_workflows_follow_the_current_build(
    dev_env: WorkflowEnvironment, pg_pool: Pool
) -> None:
    """A surge investigation waits for findings as long as it takes: started pinned on v1,
    a v2 worker's start moves it to auto-upgrade, so it goes on on v2 once v2 is current
    (and v1 can drain). The relay and the weekly review are moved the same way."""
    client = dev_env.client
    queue, deployment = f"versioned-{uuid.uuid4()}", f"ticketflow-{uuid.uuid4().hex[:8]}"
    surge = Openings(
        dimension="category",
        value="technical_fault",
        last_24h=40,
        day_before=5,
        week_before=4,
        sample=[],
    )
    async with versioned_worker(dev_env, queue, pg_pool, deployment, "v1"):
        await make_current(client, deployment, "v1")
        handle = await client.start_workflow(
            SurgeInvestigationWorkflow.run,
            Investigation(surge=surge, policy=ServicePolicy()),
            id=f"surge-{uuid.uuid4()}",
            task_queue=queue,
        )
        await eventually(lambda: builds_of(client, handle.id), lambda found: len(found) >= 2, 15)
        async with versioned_worker(dev_env, queue, pg_pool, deployment, "v2"):
            assert await let_long_workflows_upgrade(client, queue) == [handle.id]
            await make_current(client, deployment, "v2")
            await handle.execute_update(SurgeInvestigationWorkflow.close, Findings(findings="CDN"))
            assert await handle.result() == "CDN"
    info = (await handle.describe()).raw_description.workflow_execution_info
    assert info.versioning_info.versioning_override.auto_upgrade
    builds = await builds_of(client, handle.id)
    assert builds[0] == "v1" and builds[-1] == "v2"


def test_ticket_behaviour_is_a_setting() -> None:
    assert DeploymentSettings().worker_config() is None  # unversioned until a build id is set
    pinned = DeploymentSettings(build_id="2026.11.30").worker_config()
    assert pinned is not None
    assert pinned.default_versioning_behavior is VersioningBehavior.PINNED
    upgrading = DeploymentSettings(build_id="b", ticket_behavior="auto_upgrade").worker_config()
    assert upgrading is not None
    assert upgrading.default_versioning_behavior is VersioningBehavior.AUTO_UPGRADE
