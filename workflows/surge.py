"""The surge alert (SPEC §5's warning): a Schedule runs `SurgeCheckWorkflow` every few
minutes; a category or topic that grew more than the policy's threshold in 24 h, against
both the 24 h before and the same 24 h a week earlier, with enough tickets and a rise that
is real (`workflows.policy.is_surge`), opens one `SurgeInvestigationWorkflow`.

One problem, one investigation: a topic whose rise explains its category's (the rest of
the category did not surge) opens one investigation that names both (`problems`).

One episode, one investigation: its id names the dimension, the value and the cooldown
window it started in, and a second start of the same id is refused by Temporal. The
investigation convenes the emergency group (an outbox hand-off the relay delivers, like a
ticket's), links a sample of the tickets, shows in the UI through the tickets' search
attributes (`TicketPriority = 'E'`, `TicketCategory`, `TicketTopic`, `TicketStatus`),
tells the supervisors when one of its alerts cannot be delivered
(`workflows.delivery_failures`), and ends when someone records its findings (the `close`
update).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import Field

    from workflows import activity_stubs as activity
    from workflows import delivery_failures as failures
    from workflows import policy as rules
    from workflows import search_attributes as sa
    from workflows.contracts import (
        DeliveryFailure,
        Handoff,
        HandoffBatch,
        HandoffData,
        HandoffFacts,
        HandoffKind,
        SurgeFacts,
    )
    from workflows.policy import ServicePolicy
    from workflows.primitives import Contract, NonEmpty
    from workflows.surge_contracts import Openings, OpeningsRequest
    from workflows.vocabulary import Priority

# Not the tickets' and reviews' STORE_RETRY (workflows.activity_stubs), which also names
# BadData non-retryable. The same in effect (activities raise every BadData non-retryable
# themselves, activities/errors.py), but another value in the commands the surge
# workflows issue, so it stays as it was.
_STORE = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))

# Patches (tests/workflows/histories/surge/ holds runs from before each). Their else
# branches go once no run from before them is open: checks last seconds, investigations
# until someone closes them (`TicketStatus = 'investigating'` lists them).
# one investigation per problem, a category explained by its topic named by the topic's;
_ONE_PER_PROBLEM = "surge-one-per-problem"
# the emergency group convened through `send_handoffs` (before: the per-kind activity
# `convene_emergency_group`, which refused an unknown department and had no failure path);
_ONE_OUTBOX_PATH = "surge-one-outbox-path"
# a failed alert tells the supervisors.
_FAILURES_TOLD = "surge-failures-told"


class SurgeCheckInput(Contract):
    policy: ServicePolicy


class Investigation(Contract):
    surge: Openings
    policy: ServicePolicy
    # The categories whose rise this topic's explains.
    explains: list[Openings] = Field(default_factory=list)


class Findings(Contract):
    findings: NonEmpty


class Problem(Contract):
    """What one investigation looks into: a rise, and the categories it explains."""

    surge: Openings
    explains: list[Openings] = Field(default_factory=list)


def problems(policy: ServicePolicy, counted: list[Openings]) -> list[Problem]:
    """One per problem. Every rising topic is one; a rising category is one of its own
    unless its rising topics explain it (without them, the rest of it does not rise):
    then the topics' investigations name it."""
    rising = [openings for openings in counted if openings.rising(policy)]
    topics = {o.value: Problem(surge=o) for o in rising if o.dimension == "topic"}
    alone: list[Problem] = []
    for category in (o for o in rising if o.dimension == "category"):
        inside = [part for part in category.parts if part.value in topics]
        if inside and not category.without(inside).rising(policy):
            for part in inside:
                topics[part.value].explains.append(category)
        else:
            alone.append(Problem(surge=category))
    return [*topics.values(), *alone]


def investigation_id(openings: Openings, episode: int) -> str:
    return f"surge-{openings.dimension}-{openings.value}-{episode}"


def _said(openings: Openings) -> str:
    return f"{openings.dimension} {openings.value} {openings.day_before} -> {openings.last_24h}"


@workflow.defn
class SurgeCheckWorkflow:
    @workflow.run
    async def run(self, start: SurgeCheckInput) -> list[str]:
        """The ids of the investigations this check opened."""
        policy = start.policy
        counted = await workflow.execute_activity(
            activity.count_openings,
            OpeningsRequest(sample=policy.surge.sample),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_STORE,
            summary="count tickets opened per category and topic",
        )
        cooldown = rules.scaled(policy, policy.surge.cooldown).total_seconds()
        episode = int(workflow.now().timestamp() // max(1.0, cooldown))
        if workflow.patched(_ONE_PER_PROBLEM):
            found = problems(policy, counted)
        else:  # every rising category and topic on its own
            found = [Problem(surge=o) for o in counted if o.rising(policy)]
        opened: list[str] = []
        for problem in found:
            openings = problem.surge
            child_id = investigation_id(openings, episode)
            summary = f"[E] surge: {_said(openings)} in 24 h"
            if problem.explains:
                summary += " (" + ", ".join(_said(c) for c in problem.explains) + ")"
            try:
                await workflow.start_child_workflow(
                    SurgeInvestigationWorkflow.run,
                    Investigation(surge=openings, policy=policy, explains=problem.explains),
                    id=child_id,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    parent_close_policy=ParentClosePolicy.ABANDON,
                    static_summary=summary,
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
        # Failed rows the relay reported: not yet told (`_told`), and all seen.
        self._reported: list[DeliveryFailure] = []
        self._failed: list[str] = []

    @workflow.run
    async def run(self, start: Investigation) -> str:
        surge, policy = start.surge, start.policy
        dimension = sa.TICKET_CATEGORY if surge.dimension == "category" else sa.TICKET_TOPIC
        attributes = [
            sa.TICKET_STATUS.value_set("investigating"),
            sa.TICKET_PRIORITY.value_set(Priority.E.value),
            dimension.value_set(surge.value),
        ]
        if start.explains:  # the largest of the categories it explains (a keyword holds one)
            explained = max(start.explains, key=lambda c: c.last_24h)
            attributes.append(sa.TICKET_CATEGORY.value_set(explained.value))
        workflow.upsert_search_attributes(attributes)
        me = workflow.info().workflow_id
        # What to tell the group, as facts: the staff templates word it, in the
        # company's language (activities/templates/handoffs.toml).
        facts = SurgeFacts(
            dimension=surge.dimension,
            value=surge.value,
            last_24h=surge.last_24h,
            day_before=surge.day_before,
            week_before=surge.week_before,
            explains=[c.value for c in start.explains],
        )
        convene = Handoff(
            ticket_id=me,
            dedupe_key=f"{me}:emergency_group",
            kind=HandoffKind.EMERGENCY_GROUP,
            recipients=list(policy.emergency_group),
            facts=HandoffFacts(surge=facts),
            tag=self._tag(surge),
            priority=Priority.E,
            data=HandoffData(sample=surge.sample),
        )
        if workflow.patched(_ONE_OUTBOX_PATH):
            await self._send(me, [convene], "convene the emergency group")
        else:
            await workflow.execute_activity(
                activity.convene_emergency_group,
                convene,
                start_to_close_timeout=timedelta(seconds=15),
                retry_policy=_STORE,
                summary="convene the emergency group",
            )
        self._show(start)
        while self._findings is None:
            await workflow.wait_condition(
                lambda: self._findings is not None or bool(self._reported)
            )
            await self._tell(start, me)
        workflow.upsert_search_attributes([sa.TICKET_STATUS.value_set("closed")])
        return self._findings

    async def _tell(self, start: Investigation, me: str) -> None:
        """The supervisors hear of every alert the relay gave up on."""
        reported, self._reported = self._reported, []
        if not reported or not workflow.patched(_FAILURES_TOLD):
            return  # a run from before failures were told: its signals went unheard
        alerts = [
            alert
            for failure in reported
            if (
                alert := failures.failure_alert(
                    me,
                    failure,
                    start.policy,
                    event_seq=None,
                    tag=self._tag(start.surge),
                    priority=Priority.E,
                )
            )
            is not None
        ]
        if alerts:
            await self._send(me, alerts, f"tell the supervisors of {len(alerts)} failed alerts")
        self._show(start)

    async def _send(self, me: str, handoffs: list[Handoff], summary: str) -> None:
        await workflow.execute_activity(
            activity.send_handoffs,
            HandoffBatch(owner_id=me, handoffs=handoffs),
            start_to_close_timeout=timedelta(seconds=15),
            retry_policy=_STORE,
            summary=summary,
        )

    @staticmethod
    def _tag(surge: Openings) -> str:
        return f"surge-{surge.dimension}-{surge.value}"

    def _show(self, start: Investigation) -> None:
        surge = start.surge
        lines = [
            f"**surge** `{surge.dimension}={surge.value}`: {surge.day_before} → "
            f"{surge.last_24h} in 24 h",
            *(
                f"explains `category={c.value}`: {c.day_before} → {c.last_24h}"
                for c in start.explains
            ),
            "example tickets: " + ", ".join(surge.sample),
        ]
        if self._failed:
            lines.append("alerts not delivered: " + ", ".join(self._failed))
        workflow.set_current_details("\n\n".join(lines))

    @workflow.signal
    def delivery_failed(self, failure: DeliveryFailure) -> None:
        """An alert the relay gave up on (redeliveries dropped)."""
        if failures.first_report(self._failed, failure):
            self._reported.append(failure)

    @workflow.update
    def close(self, findings: Findings) -> str:
        self._findings = findings.findings
        return workflow.info().workflow_id

    @close.validator
    def _validate_close(self, findings: Findings) -> None:
        if self._findings is not None:
            raise ApplicationError("the investigation is closed already", non_retryable=True)
