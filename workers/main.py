"""The ticket worker: TicketWorkflow plus every activity, wired to one PostgreSQL pool.

`ticketflow worker` (an existing cluster) and `ticketflow dev` (the local stack) both end
here. Migrations run first, so a new worker never writes to an older schema.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path

import structlog
from google.protobuf.field_mask_pb2 import FieldMask
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflow.v1 import VersioningOverride, WorkflowExecutionOptions
from temporalio.api.workflowservice.v1 import UpdateWorkflowExecutionOptionsRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowExecutionStatus,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Interceptor, Worker, WorkerDeploymentConfig

from activities import all_activities
from activities.classifier import warm_up
from activities.database import Pool, create_pool, migrate
from activities.delivery import OutboxRelay
from activities.messages import MessageTemplates, TemplateError
from stores.knowledge import KnowledgeStore
from stores.policy_store import publish as publish_policy
from workers.settings import (
    GRACEFUL_SHUTDOWN,
    STICKY_CACHE,
    STICKY_WAIT,
    WORKFLOW_TASK_SLOTS,
    ConfigurationError,
    Settings,
)
from workflows.policy import ServicePolicy, Weekday
from workflows.relay import OutboxRelayWorkflow, RelayInput, relay_lane, relay_workflow_id
from workflows.review import WeeklyReviewKickoffWorkflow, WeeklyReviewWorkflow
from workflows.review_contracts import ReviewKickoff
from workflows.sandbox import workflow_runner
from workflows.surge import SurgeCheckInput, SurgeCheckWorkflow, SurgeInvestigationWorkflow
from workflows.ticket import TicketWorkflow

log = structlog.get_logger(__name__)


class Workers:
    """A worker process's lanes, run and stopped together: the tickets' task queue and,
    with a relay, the relay's own (`relay_lane`)."""

    def __init__(self, lanes: Sequence[Worker]) -> None:
        self.lanes = list(lanes)
        self._open = AsyncExitStack()

    async def run(self) -> None:
        """Poll every lane until `shutdown`; a lane that fails stops the others."""
        running = [asyncio.create_task(lane.run()) for lane in self.lanes]
        try:
            await asyncio.gather(*running)
        finally:
            if not all(task.done() for task in running):
                await self.shutdown()
                await asyncio.wait(running)

    async def shutdown(self) -> None:
        await asyncio.gather(*(lane.shutdown() for lane in self.lanes if lane.is_running))

    async def __aenter__(self) -> Workers:
        async with AsyncExitStack() as opening:
            for lane in self.lanes:
                await opening.enter_async_context(lane)
            self._open = opening.pop_all()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._open.aclose()


def build_worker(
    client: Client,
    task_queue: str,
    pool: Pool,
    policy: ServicePolicy,
    interceptors: Sequence[Interceptor] = (),
    relay: OutboxRelay | None = None,
    models: Path | None = None,
    deployment: WorkerDeploymentConfig | None = None,
    graceful_shutdown: timedelta = GRACEFUL_SHUTDOWN,
    sticky_cache: int = STICKY_CACHE,
    sticky_wait: timedelta = STICKY_WAIT,
    workflow_task_slots: int = WORKFLOW_TASK_SLOTS,
    sandboxed: bool = True,
) -> Workers:
    """The one definition of a ticket worker, shared by the process, the tests and bench.
    With a `relay`, it also runs the outbox relay, on the relay's own task queue."""
    lanes = [
        Worker(
            client,
            task_queue=task_queue,
            workflows=[
                TicketWorkflow,
                SurgeCheckWorkflow,
                SurgeInvestigationWorkflow,
                WeeklyReviewKickoffWorkflow,
                WeeklyReviewWorkflow,
            ],
            activities=all_activities(pool, policy, models),
            workflow_runner=workflow_runner(sandboxed),
            interceptors=interceptors,
            graceful_shutdown_timeout=graceful_shutdown,
            deployment_config=deployment,
            max_cached_workflows=sticky_cache,
            sticky_queue_schedule_to_start_timeout=sticky_wait,
            max_concurrent_workflow_tasks=workflow_task_slots,
        )
    ]
    if relay is not None:
        lanes.append(
            Worker(
                client,
                task_queue=relay_lane(task_queue),
                workflows=[OutboxRelayWorkflow],
                activities=[relay.deliver_due],
                workflow_runner=workflow_runner(),
                interceptors=interceptors,
                graceful_shutdown_timeout=graceful_shutdown,
                deployment_config=deployment,
                sticky_queue_schedule_to_start_timeout=sticky_wait,
            )
        )
    return Workers(lanes)


def load_templates(settings: Settings) -> MessageTemplates:
    """The message templates, checked: a bad one stops the start, naming it."""
    try:
        policy = settings.policy
        return MessageTemplates.load(
            settings.templates_file, policy.default_locale, policy.staff_locale
        )
    except TemplateError as error:
        raise ConfigurationError(str(error)) from None


def surge_schedule_id(task_queue: str) -> str:
    return f"surge-check-{task_queue}"


async def ensure_surge_schedule(client: Client, task_queue: str, policy: ServicePolicy) -> None:
    """The surge check's Schedule: every worker start calls this, and brings one that
    exists already up to date (its interval, zone and the policy its checks start with)."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            SurgeCheckWorkflow.run,
            SurgeCheckInput(policy=policy),
            id=f"surge-check-{task_queue}-run",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=policy.surge.check_every)],
            time_zone_name=policy.time_zone,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    await _create_or_update(client, surge_schedule_id(task_queue), schedule)


def review_schedule_id(task_queue: str) -> str:
    return f"weekly-review-{task_queue}"


async def ensure_review_schedule(client: Client, task_queue: str, policy: ServicePolicy) -> None:
    """The weekly review's Schedule (SPEC §5), created once: the policy's weekday and time
    in its zone. Each firing starts the review of the week before, once per week."""
    review = policy.review
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            WeeklyReviewKickoffWorkflow.run,
            ReviewKickoff(policy=policy),
            id=f"weekly-review-kickoff-{task_queue}",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    day_of_week=[ScheduleRange(list(Weekday).index(review.weekday) + 1)],
                    hour=[ScheduleRange(review.at.hour)],
                    minute=[ScheduleRange(review.at.minute)],
                )
            ],
            time_zone_name=review.time_zone or policy.time_zone,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    await _create_or_update(client, review_schedule_id(task_queue), schedule)


async def _create_or_update(client: Client, schedule_id: str, schedule: Schedule) -> None:
    """A Schedule as this worker's policy says: created, or brought up to date (its day,
    time, zone and the policy its runs start with), keeping its state (paused or not)."""
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:

        def latest(current: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(
                schedule=dataclasses.replace(schedule, state=current.description.schedule.state)
            )

        await client.get_schedule_handle(schedule_id).update(latest)


async def start_relay(client: Client, task_queue: str, relays: int = 1) -> None:
    """Start the outbox relay on its own lane unless it runs already, and tell it how
    many delivery activities to run: any number of worker starts leave one relay per
    task queue. A relay left on the tickets' queue by an earlier version is ended first
    (its activity hands its rows back when its heartbeat hears so)."""
    workflow_id = relay_workflow_id(task_queue)
    lane = relay_lane(task_queue)
    try:
        running = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise
    else:
        if running.status == WorkflowExecutionStatus.RUNNING and running.task_queue != lane:
            await client.get_workflow_handle(workflow_id).terminate(
                "the relay moved to a task queue of its own"
            )
    await client.start_workflow(
        OutboxRelayWorkflow.run,
        RelayInput(relays=relays),
        id=workflow_id,
        task_queue=lane,
        start_signal="resize",
        start_signal_args=[relays],
        static_summary="delivers every ticket's messages and hand-offs",
    )


# Worker versioning (docs/upgrades.md). A versioned worker pins what it runs by default
# (TICKETFLOW_DEPLOYMENT__TICKET_BEHAVIOR): tickets, the weekly kickoff and the surge check
# finish on the build they started on. These three wait for weeks or never end, so pinned
# they would hold their build for ever: each versioned worker start moves them to
# auto-upgrade, and they follow the current build (their changes use workflow.patched).
# Not declared with @workflow.defn: the SDK would send the behaviour from unversioned
# workers too, which the server refuses.
AUTO_UPGRADING = (OutboxRelayWorkflow, WeeklyReviewWorkflow, SurgeInvestigationWorkflow)


async def let_long_workflows_upgrade(client: Client, task_queue: str) -> list[str]:
    """Set an auto-upgrade override on the running long workflows of the queue; their ids."""
    types = ", ".join(f"'{workflow_type.__name__}'" for workflow_type in AUTO_UPGRADING)
    query = (
        f"(TaskQueue = '{task_queue}' OR TaskQueue = '{relay_lane(task_queue)}')"
        f" AND ExecutionStatus = 'Running' AND WorkflowType IN ({types})"
    )
    moved = []
    async for execution in client.list_workflows(query):
        await client.workflow_service.update_workflow_execution_options(
            UpdateWorkflowExecutionOptionsRequest(
                namespace=client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=execution.id),
                workflow_execution_options=WorkflowExecutionOptions(
                    versioning_override=VersioningOverride(auto_upgrade=True)
                ),
                update_mask=FieldMask(paths=["versioning_override"]),
            )
        )
        moved.append(execution.id)
    return moved


async def run_worker(
    settings: Settings,
    client: Client,
    database_url: str,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until `stop` is set (or forever), then drain and return."""
    stop = stop or asyncio.Event()
    templates = load_templates(settings)
    pool = await create_pool(database_url)
    relay: OutboxRelay | None = None
    try:
        applied = await migrate(pool)
        await KnowledgeStore(pool).seed_if_empty()
        await publish_policy(pool, settings.task_queue, settings.policy)
        # The learned classifier before the first ticket: trained here if none is saved
        # (about 15 s, once), and its sentence encoder loaded (about 1 s), not inside a
        # ticket's intake.
        await asyncio.to_thread(warm_up, settings.data_dir / "models")
        relay = OutboxRelay(pool, settings.policy, templates, settings.delivery, client)
        worker = build_worker(
            client,
            settings.task_queue,
            pool,
            settings.policy,
            relay=relay,
            models=settings.data_dir / "models",
            deployment=settings.deployment.worker_config(),
            graceful_shutdown=settings.graceful_shutdown,
            sticky_cache=settings.sticky_cache,
            sticky_wait=settings.sticky_wait,
            workflow_task_slots=settings.workflow_task_slots,
            sandboxed=settings.workflow_sandbox,
        )
        log.info(
            "worker started",
            task_queue=settings.task_queue,
            namespace=client.namespace,
            migrations_applied=applied,
            time_scale=settings.policy.time_scale,
            build_id=settings.deployment.build_id,
            workflow_sandbox=settings.workflow_sandbox,
        )
        async with worker:
            await ensure_surge_schedule(client, settings.task_queue, settings.policy)
            await ensure_review_schedule(client, settings.task_queue, settings.policy)
            if settings.delivery.configured:
                await start_relay(client, settings.task_queue, settings.delivery.relays)
            else:
                # Nothing is lost: rows wait in the outbox until a destination is set.
                log.warning(
                    "deliveries are not configured: messages and hand-offs wait in the outbox",
                    setting="TICKETFLOW_DELIVERY__WEBHOOK_URL or TICKETFLOW_DELIVERY__ROUTES",
                )
            if settings.deployment.build_id is not None:
                moved = await let_long_workflows_upgrade(client, settings.task_queue)
                log.info("long workflows follow the current build", workflows=len(moved))
            await stop.wait()
            log.info("worker draining", graceful_seconds=settings.graceful_shutdown.total_seconds())
        log.info("worker stopped")
    finally:
        if relay is not None:
            await relay.close()
        await pool.close()
