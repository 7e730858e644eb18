"""The surge alert (SPEC §5's warning): a Schedule runs `SurgeCheckWorkflow` every few
minutes; a category or topic that grew more than the policy's threshold in 24 h, against
both the 24 h before and the same 24 h a week earlier, with enough tickets and a rise that
is real (`workflows.policy.is_surge`), opens one `SurgeInvestigationWorkflow`.

One episode, one investigation: its id names the dimension, the value and the cooldown
window it started in, and a second start of the same id is refused by Temporal. The
investigation convenes the emergency group (an outbox hand-off the relay delivers),
links a sample of the tickets, shows in the UI through the tickets' search attributes
(`TicketPriority = 'E'`, `TicketCategory` or `TicketTopic`, `TicketStatus`), and ends when
someone records its findings (the `close` update).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from workflows import activity_names as activity
    from workflows import policy as rules
    from workflows import search_attributes as sa
    from workflows.contracts import Handoff, HandoffKind
    from workflows.policy import ServicePolicy
    from workflows.primitives import Contract, NonEmpty
    from workflows.vocabulary import Priority

_STORE = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))


class Openings(Contract):
    """Tickets opened in a category or topic: the last 24 h and its two baselines."""

    dimension: str  # "category" or "topic"
    value: str
    last_24h: int
    day_before: int
    week_before: int
    sample: list[str]


class OpeningsRequest(Contract):
    sample: int


class SurgeCheckInput(Contract):
    policy: ServicePolicy


class Investigation(Contract):
    surge: Openings
    policy: ServicePolicy


class Findings(Contract):
    findings: NonEmpty


def investigation_id(openings: Openings, episode: int) -> str:
    return f"surge-{openings.dimension}-{openings.value}-{episode}"


@workflow.defn
class SurgeCheckWorkflow:
    @workflow.run
    async def run(self, start: SurgeCheckInput) -> list[str]:
        """The ids of the investigations this check opened."""
        policy = start.policy
        counted: list[Openings] = await workflow.execute_activity(
            activity.COUNT_OPENINGS,
            OpeningsRequest(sample=policy.surge.sample),
            result_type=list[Openings],
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_STORE,
            summary="count tickets opened per category and topic",
        )
        cooldown = rules.scaled(policy, policy.surge.cooldown).total_seconds()
        episode = int(workflow.now().timestamp() // max(1.0, cooldown))
        opened: list[str] = []
        for openings in counted:
            rising = rules.is_surge(policy, openings.last_24h, openings.day_before)
            if not rising or not rules.is_surge(policy, openings.last_24h, openings.week_before):
                continue
            child_id = investigation_id(openings, episode)
            try:
                await workflow.start_child_workflow(
                    SurgeInvestigationWorkflow.run,
                    Investigation(surge=openings, policy=policy),
                    id=child_id,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    parent_close_policy=ParentClosePolicy.ABANDON,
                    static_summary=f"[E] surge: {openings.dimension} {openings.value} "
                    f"{openings.day_before} -> {openings.last_24h} in 24 h",
                )
            except WorkflowAlreadyStartedError:
                continue  # this episode has its investigation already
            opened.append(child_id)
        return opened


@workflow.defn
class SurgeInvestigationWorkflow:
    @workflow.init
    def __init__(self, start: Investigation) -> None:
        self._findings: str | None = None

    @workflow.run
    async def run(self, start: Investigation) -> str:
        surge, policy = start.surge, start.policy
        dimension = sa.TICKET_CATEGORY if surge.dimension == "category" else sa.TICKET_TOPIC
        workflow.upsert_search_attributes(
            [
                sa.TICKET_STATUS.value_set("investigating"),
                sa.TICKET_PRIORITY.value_set(Priority.E.value),
                dimension.value_set(surge.value),
            ]
        )
        me = workflow.info().workflow_id
        await workflow.execute_activity(
            activity.CONVENE_EMERGENCY_GROUP,
            Handoff(
                ticket_id=me,
                dedupe_key=f"{me}:emergency_group",
                kind=HandoffKind.EMERGENCY_GROUP,
                recipients=list(policy.emergency_group),
                summary=f"surge of {surge.dimension} {surge.value}: {surge.day_before} -> "
                f"{surge.last_24h} tickets in 24 h ({surge.week_before} a week earlier)",
                tag=f"surge-{surge.dimension}-{surge.value}",
                priority=Priority.E,
                data={"sample": surge.sample},
            ),
            start_to_close_timeout=timedelta(seconds=15),
            retry_policy=_STORE,
            summary="convene the emergency group",
        )
        workflow.set_current_details(
            f"**surge** `{surge.dimension}={surge.value}`: {surge.day_before} → "
            f"{surge.last_24h} in 24 h\n\nexample tickets: " + ", ".join(surge.sample)
        )
        await workflow.wait_condition(lambda: self._findings is not None)
        workflow.upsert_search_attributes([sa.TICKET_STATUS.value_set("closed")])
        assert self._findings is not None
        return self._findings

    @workflow.update
    def close(self, findings: Findings) -> str:
        self._findings = findings.findings
        return workflow.info().workflow_id

    @close.validator
    def _validate_close(self, findings: Findings) -> None:
        if self._findings is not None:
            raise ApplicationError("the investigation is closed already", non_retryable=True)
