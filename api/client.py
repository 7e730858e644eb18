"""The one way backends open tickets and act on them.

tickets = TicketClient(client, task_queue="tickets", policy=ServicePolicy())
opened = await tickets.open(intake)          # same idempotency key → same ticket
view = await tickets.read_back(opened, timedelta(seconds=5))  # then a quiet ticket (settle)
await tickets.act(opened.ticket_id, Respond(actor=agent, message="..."))
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog
from google.protobuf.field_mask_pb2 import FieldMask
from temporalio.api.common.v1 import Priority as PriorityProto
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import PendingWorkflowTaskState, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflow.v1 import WorkflowExecutionOptions
from temporalio.api.workflowservice.v1 import (
    DeleteWorkflowExecutionRequest,
    DescribeTaskQueueRequest,
    UpdateWorkflowExecutionOptionsRequest,
)
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import Priority, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.settings import RAISE_WHEN_BEHIND
from workflows.classification import classify_intake
from workflows.contracts import (
    Action,
    ActionSignal,
    Classification,
    CustomerReply,
    Intake,
    PartnerCallback,
    TicketAction,
    TicketInput,
    TicketOutcome,
    TicketState,
    TicketView,
)
from workflows.policy import ServicePolicy, tag_for
from workflows.primitives import Contract
from workflows.privacy import excerpt, mask
from workflows.review import WeeklyReviewWorkflow
from workflows.review_contracts import (
    ReviewAction,
    ReviewInput,
    ReviewView,
    review_action_name,
    review_id,
)
from workflows.review_rules import review_zone, week_period
from workflows.ticket import TicketWorkflow

# How long the API waits for the server to take a ticket's settled priority.
_SETTLE_TIMEOUT = timedelta(seconds=2)
# How often a process asks how far behind the ticket queue is: at most once a second,
# whatever the number of requests (one DescribeTaskQueue, about 10 ms on the dev server),
# and how long it waits for the answer before taking the queue as keeping up.
_BEHIND_EVERY = timedelta(seconds=1)
_BEHIND_TIMEOUT = timedelta(milliseconds=500)
# A raised ticket that was sent a signal is settled once a worker has taken the signal's
# workflow task (a settle re-queues a waiting task at the settled priority): asked from
# this often up to that often, for this long at most, then settled anyway.
_TAKEN_EVERY = (timedelta(milliseconds=250), timedelta(seconds=5))
_TAKEN_WITHIN = timedelta(minutes=2)

log = structlog.get_logger(__name__)


def _priority(key: int | None) -> Priority:
    return Priority.default if key is None else Priority(priority_key=key)


def new_action_id() -> str:
    return uuid.uuid4().hex


def ticket_id_for(idempotency_key: str) -> str:
    """The workflow id of the ticket an intake key opens.

    Derived, not random, so a retried intake lands on the same workflow. Hashed, because
    workflow ids are never encrypted and a backend's key may embed customer data.
    """
    return "ticket-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class OpenedTicket:
    ticket_id: str
    created: bool
    # The intake's rules, as the ticket's first workflow task will classify it: what the
    # API says of a ticket it started but could not read back in time.
    guess: Classification
    tag: str


class ActionRejected(Exception):
    """The ticket refused an action; the message says why in words a person understands."""


class ActionUnconfirmed(Exception):
    """Temporal did not say whether the ticket took the action (it may still, later).
    Send it again with `action_id`: the ticket applies it once."""

    def __init__(self, action_id: str) -> None:
        super().__init__(f"the ticket did not confirm the action in time; resend {action_id}")
        self.action_id = action_id


# RPC outcomes that leave an update's fate unknown.
_UNCONFIRMED = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED}
)
# Refusals that mean "not yet" rather than "no": a review still taking its sample. Sent
# again later with its id, the action is applied once.
_NOT_YET = frozenset({"ReviewNotReady"})

_View = TypeVar("_View", bound=Contract)


async def _send_action(
    handle: WorkflowHandle[Any, Any], action: Action | ReviewAction, name: str, view: type[_View]
) -> _View:
    """Send an action as the update `name` and wait until the workflow has accepted it.

    Exactly once: an action without an `action_id` is sent with a new one. The id
    becomes the update id, which Temporal attaches to the first update while the run
    lasts, and the workflow drops an id it has seen in later runs too. When the outcome
    is unknown (Temporal did not answer in time), `ActionUnconfirmed` carries the id:
    send the action again with it, and it is applied once.
    """
    sent = action
    if sent.action_id is None:
        sent = action.model_copy(update={"action_id": new_action_id()})
    try:
        answer: _View = await handle.execute_update(
            name, sent, id=f"{name}:{sent.action_id}", result_type=view
        )
    except WorkflowUpdateFailedError as err:
        if isinstance(err.cause, ApplicationError) and err.cause.type in _NOT_YET:
            raise ActionUnconfirmed(str(sent.action_id)) from err
        if isinstance(err.cause, ApplicationError):
            raise ActionRejected(err.cause.message) from err
        raise
    except WorkflowUpdateRPCTimeoutOrCancelledError as err:
        raise ActionUnconfirmed(str(sent.action_id)) from err
    except RPCError as err:
        if err.status in _UNCONFIRMED:
            raise ActionUnconfirmed(str(sent.action_id)) from err
        raise
    return answer


class _QueueWatch:
    """How long the oldest workflow task of a task queue has waited (the server's
    approximate backlog age), asked at most once per `every` and shared by all callers."""

    def __init__(self, client: Client, task_queue: str, every: timedelta) -> None:
        self._client = client
        self._request = DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            report_stats=True,
        )
        self._every = every.total_seconds()
        self._lock = asyncio.Lock()
        self._asked_at = -math.inf
        self._waited = timedelta(0)
        self._said_unknown = False

    async def waited(self) -> timedelta:
        """Zero when not known (people's work then goes as usual; said once in the log).
        The server counts the shared queue only, not workers' sticky queues: a herd of
        cached tickets shows here once its tasks time out of them (Settings.sticky_wait)."""
        async with self._lock:
            if time.monotonic() - self._asked_at >= self._every:
                self._asked_at = time.monotonic()
                self._waited = await self._ask()
            return self._waited

    async def _ask(self) -> timedelta:
        try:
            found = await self._client.workflow_service.describe_task_queue(
                self._request, timeout=_BEHIND_TIMEOUT
            )
        except (RPCError, RuntimeError) as error:  # RuntimeError: a lazy client not connected
            self._unknown(str(error))
            return timedelta(0)
        if not found.HasField("stats"):
            self._unknown("the server reports no task-queue statistics")
            return timedelta(0)
        return found.stats.approximate_backlog_age.ToTimedelta()

    def _unknown(self, why: str) -> None:
        if not self._said_unknown:
            self._said_unknown = True
            log.warning("ticket queue backlog not known: people are not raised", error=why)


@dataclass
class _Raised:
    """One ticket raised for people's inputs: how many are in flight, whether the server
    has it at `person_waiting`, and a lock that keeps its raise and settle in order."""

    inputs: int = 0
    up: bool = False
    changing: asyncio.Lock = field(default_factory=asyncio.Lock)


class TicketClient:
    def __init__(
        self,
        client: Client,
        *,
        task_queue: str,
        policy: ServicePolicy,
        raise_when_behind: timedelta | None = RAISE_WHEN_BEHIND,
    ) -> None:
        """`raise_when_behind`: see `_person_acting`; None never raises."""
        self._client = client
        self._task_queue = task_queue
        self._policy = policy
        self._raise_when_behind = raise_when_behind
        self._queue = _QueueWatch(client, task_queue, _BEHIND_EVERY)
        # Tickets raised for people's inputs in flight: raised at the first, settled after
        # the last, so that one input's settle does not lower another's task.
        self._raised: dict[str, _Raised] = {}
        self._settling: set[asyncio.Task[None]] = set()

    @property
    def temporal(self) -> Client:
        return self._client

    @property
    def task_queue(self) -> str:
        return self._task_queue

    async def open(self, intake: Intake) -> OpenedTicket:
        ticket_id = ticket_id_for(intake.idempotency_key)
        guess = classify_intake(intake)
        tag = tag_for(self._policy, guess.category, guess.topic, guess.priority)
        try:
            await self._client.start_workflow(
                TicketWorkflow.run,
                TicketInput(ticket_id=ticket_id, intake=intake, policy=self._policy),
                id=ticket_id,
                task_queue=self._task_queue,
                # FAIL tells us whether this call created the ticket; REJECT_DUPLICATE keeps
                # a closed ticket's id from starting again while Temporal retains it (after
                # that, the intake_keys table in PostgreSQL refuses it).
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                # A new customer's first workflow tasks pass a 10:00 herd's; `settle`
                # puts the ticket with the others once it has answered.
                priority=_priority(self._policy.priorities.person_waiting),
                # Shown by the UI without a codec: no raw customer text (workflows.privacy).
                static_summary=f"[{guess.priority.value}] {tag.rsplit('-', 1)[0]}: "
                f"{excerpt(intake.subject)}",
                static_details=(
                    f"channel `{intake.channel.value}` · tier `{intake.tier.value}` · "
                    f"classified: {mask(guess.reason)}"
                ),
            )
        except WorkflowAlreadyStartedError:
            return OpenedTicket(ticket_id=ticket_id, created=False, guess=guess, tag=tag)
        return OpenedTicket(ticket_id=ticket_id, created=True, guess=guess, tag=tag)

    async def settle(self, ticket_id: str) -> bool:
        """A new ticket that has answered (its intake read back) goes from
        `person_waiting` to `quiet`: from then on its own workflow tasks, a 10:00 wakeup
        among them, queue with the other quiet tickets' and behind a new customer's (a
        person's appends still go first: policy.priorities). One history event, sometimes a
        workflow task, no eviction from the worker's cache. False if the server did not
        take it: the ticket then stays ahead of the quiet ones, which costs nobody a
        promise."""
        priorities = self._policy.priorities
        if priorities.person_waiting is None:
            return True  # started at the default: nothing to settle
        return await self._set_priority(ticket_id, priorities.quiet)

    async def _set_priority(self, ticket_id: str, key: int | None) -> bool:
        try:
            await self._client.workflow_service.update_workflow_execution_options(
                UpdateWorkflowExecutionOptionsRequest(
                    namespace=self._client.namespace,
                    workflow_execution=WorkflowExecution(workflow_id=ticket_id),
                    workflow_execution_options=WorkflowExecutionOptions(
                        priority=PriorityProto(priority_key=key or 0)
                    ),
                    update_mask=FieldMask(paths=["priority"]),
                ),
                timeout=_SETTLE_TIMEOUT,
            )
        except RPCError:
            return False
        return True

    @contextlib.asynccontextmanager
    async def _person_acting(self, ticket_id: str, answered: bool) -> AsyncIterator[None]:
        """A person's input to the ticket, ahead of a herd (policy.priorities). A ticket's
        workflow tasks run at its own priority, and there is none per update or signal.
        So while the ticket queue is behind (its oldest workflow task has waited longer
        than `raise_when_behind`), the ticket is raised to `person_waiting` and its input's
        workflow task is queued there, before the herd's. An `answered` input (an update)
        has been taken when it returns, so the ticket is settled then (in the background,
        not before the answer); a signal's task (or an update's that did not return) may
        still be queued, and a settle would queue it behind the herd again, so the ticket
        is settled once a worker has started that task (`_release_once_taken`).

        Inputs to one ticket at once share one raise: each is sent only once the ticket
        is raised, and the last one out settles it (`_Raised`)."""
        person = self._policy.priorities.person_waiting
        behind = self._raise_when_behind
        if behind is None or person is None:
            yield
            return
        raised = self._raised.get(ticket_id)
        if raised is None:
            if await self._queue.waited() <= behind:
                yield
                return
            raised = self._raised.setdefault(ticket_id, _Raised())
        raised.inputs += 1
        taken = answered
        try:
            async with raised.changing:
                if not raised.up:
                    # Up before the call: a caller cancelled during it may have raised it.
                    raised.up = True
                    if not await self._set_priority(ticket_id, person):
                        log.warning("ticket not raised ahead of the queue", ticket_id=ticket_id)
            yield
        except BaseException:
            taken = False  # an update not answered may still be queued, as a signal's is
            raise
        finally:
            # In the background: in a herd of 10,000 the settle's call took seconds, and
            # the agent's answer waited for it (benchmarks.md, "Where a bystander's
            # seconds go").
            releasing = asyncio.create_task(
                self._release(ticket_id, raised)
                if taken
                else self._release_once_taken(ticket_id, raised),
                name=f"release {ticket_id}",
            )
            self._settling.add(releasing)
            releasing.add_done_callback(self._settled)

    async def _release(self, ticket_id: str, raised: _Raised) -> None:
        raised.inputs -= 1
        if raised.inputs > 0:
            return
        # An input that came while this one waited for the lock keeps the raise.
        await self._lower(ticket_id, raised, unless_inputs=True)
        if raised.inputs == 0 and self._raised.get(ticket_id) is raised:
            del self._raised[ticket_id]

    async def _release_once_taken(self, ticket_id: str, raised: _Raised) -> None:
        """Release once a worker has started the task that takes the signal. A task
        already running when the signal came cannot take it: the server holds the signal
        for the next task, so that one is waited for. Released whatever happens."""
        handle = self.handle(ticket_id)
        deadline = time.monotonic() + _TAKEN_WITHIN.total_seconds()
        every, longest = (e.total_seconds() for e in _TAKEN_EVERY)
        running_before: datetime | None = None
        first = True
        try:
            while time.monotonic() < deadline:
                try:
                    described = await handle.describe(rpc_timeout=_SETTLE_TIMEOUT)
                except RPCError as error:
                    if error.status is RPCStatusCode.NOT_FOUND:
                        raised.up = False  # gone: nothing to settle
                        return
                    described = None  # a loaded server: ask again
                if described is not None:
                    raw = described.raw_description
                    if not raw.HasField("pending_workflow_task"):
                        return
                    task = raw.pending_workflow_task
                    started = (
                        task.state == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED
                    )
                    scheduled = task.scheduled_time.ToDatetime()
                    if first and started:
                        running_before = scheduled
                    elif started and scheduled != running_before:
                        return
                    first = False
                await asyncio.sleep(every)
                every = min(every * 2, longest)
        finally:
            await self._release(ticket_id, raised)

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._settling.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "raised ticket not released", task=task.get_name(), error=repr(task.exception())
            )

    async def aclose(self) -> None:
        """Before the process ends, every raised ticket is settled rather than left ahead
        of the quiet ones for life: the releases under way are cut short (a wait for a
        signal's task releases as it ends), then whatever is still raised is settled."""
        while self._settling:
            waiting = list(self._settling)
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
        await asyncio.gather(*(self._lower(t, r) for t, r in list(self._raised.items())))

    async def _lower(self, ticket_id: str, raised: _Raised, unless_inputs: bool = False) -> None:
        """Settle a raised ticket, in turn with its raises; not while inputs are in flight
        if `unless_inputs` (at shutdown they are settled all the same)."""
        async with raised.changing:
            if raised.up and not (unless_inputs and raised.inputs):
                await self._settle_or_warn(ticket_id)
                raised.up = False

    async def _settle_or_warn(self, ticket_id: str) -> None:
        if not await self.settle(ticket_id):
            log.warning("ticket not settled to the quiet priority", ticket_id=ticket_id)

    async def read_back(self, opened: OpenedTicket, within: timedelta) -> TicketView | None:
        """The order every opener of a ticket follows: `open`, then this. The ticket's
        view once it has stored its intake, then the ticket settled to `quiet`. None if it
        has not answered `within`: it is started, and settled all the same, because left
        raised it would stay ahead of the quiet tickets for its whole life. Other errors of
        the read propagate after the settle (which takes at most `_SETTLE_TIMEOUT`, also
        when the caller is cancelled), except NOT_FOUND: no ticket, nothing to settle."""
        gone = False
        try:
            async with asyncio.timeout(within.total_seconds()):
                return await self.view(opened.ticket_id)
        except TimeoutError:
            return None
        except RPCError as error:
            gone = error.status is RPCStatusCode.NOT_FOUND
            raise
        finally:
            if not gone:
                await self._settle_or_warn(opened.ticket_id)

    def handle(self, ticket_id: str) -> WorkflowHandle[TicketWorkflow, TicketOutcome]:
        return self._client.get_workflow_handle_for(TicketWorkflow.run, ticket_id)

    async def act(self, ticket_id: str, action: Action) -> TicketView:
        """Send an action as its update and wait until the ticket has accepted it (see
        `_send_action`)."""
        async with self._person_acting(ticket_id, answered=True):
            return await _send_action(self.handle(ticket_id), action, action.type, TicketView)

    async def act_later(self, ticket_id: str, action: TicketAction) -> None:
        """Fire and forget: a misfit becomes an `action_rejected` event on the ticket."""
        async with self._person_acting(ticket_id, answered=False):
            await self.handle(ticket_id).signal(TicketWorkflow.act, ActionSignal(action=action))

    async def customer_reply(self, ticket_id: str, reply: CustomerReply) -> None:
        async with self._person_acting(ticket_id, answered=False):
            await self.handle(ticket_id).signal(TicketWorkflow.customer_reply, reply)

    async def partner_callback(self, ticket_id: str, callback: PartnerCallback) -> None:
        async with self._person_acting(ticket_id, answered=False):
            await self.handle(ticket_id).signal(TicketWorkflow.partner_callback, callback)

    async def stop(self, ticket_id: str, reason: str) -> bool:
        """Terminate the ticket's workflow if it still runs; True if it did."""
        try:
            await self.handle(ticket_id).terminate(reason=reason)
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return False  # completed, terminated before, or gone after retention
            raise
        return True

    async def forget(self, ticket_id: str) -> int:
        """Delete every run of the ticket's workflow from Temporal (a long ticket continues
        as new); how many. The server deletes in the background (about 30 s on the dev
        server), and until then a history still answers, so the API checks erasures itself."""
        deleted = 0
        async for execution in self._client.list_workflows(f"WorkflowId = '{ticket_id}'"):
            try:
                await self._client.workflow_service.delete_workflow_execution(
                    DeleteWorkflowExecutionRequest(
                        namespace=self._client.namespace,
                        workflow_execution=WorkflowExecution(
                            workflow_id=ticket_id, run_id=execution.run_id
                        ),
                    )
                )
            except RPCError as error:
                if error.status is not RPCStatusCode.NOT_FOUND:
                    raise
                continue
            deleted += 1
        return deleted

    async def view(self, ticket_id: str) -> TicketView:
        return await self.handle(ticket_id).query(TicketWorkflow.view)

    async def state(self, ticket_id: str) -> TicketState:
        return await self.handle(ticket_id).query(TicketWorkflow.state)


class ReviewClient:
    """The weekly reviews (SPEC §5), as review leads and the Schedule reach them."""

    def __init__(self, client: Client, *, task_queue: str, policy: ServicePolicy) -> None:
        self._client = client
        self._task_queue = task_queue
        self._policy = policy

    def handle(self, week: str) -> WorkflowHandle[WeeklyReviewWorkflow, ReviewView]:
        return self._client.get_workflow_handle_for(WeeklyReviewWorkflow.run, review_id(week))

    async def start(self, week: str) -> bool:
        """Start the review of `week` unless it exists: True if this call started it."""
        start, end = week_period(week, review_zone(self._policy))
        try:
            await self._client.start_workflow(
                WeeklyReviewWorkflow.run,
                ReviewInput(week=week, period_start=start, period_end=end, policy=self._policy),
                id=review_id(week),
                task_queue=self._task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                # A failed or terminated review may run again; a completed one may not.
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                static_summary=f"weekly review of {week}",
            )
        except WorkflowAlreadyStartedError:
            return False  # running, or done: one review per week either way
        return True

    async def act(self, week: str, action: ReviewAction) -> ReviewView:
        """A lead's action as its update, applied once (see `_send_action`)."""
        name = review_action_name(type(action))
        return await _send_action(self.handle(week), action, name, ReviewView)

    async def view(self, week: str) -> ReviewView:
        return await self.handle(week).query(WeeklyReviewWorkflow.state)
