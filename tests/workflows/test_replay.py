"""Determinism: histories recorded from earlier versions must replay on today's code.

`tests/workflows/histories/*.json` are real histories of ticket lifecycles. A change to
TicketWorkflow that alters its commands fails here until it is guarded with
`workflow.patched(...)`. Record new ones after a deliberate, guarded change with
`TICKETFLOW_RECORD_HISTORIES=1 pytest tests/workflows/test_replay.py`, after renaming
the previous recordings to `<scenario>.<what changed>.json` so they keep replaying.
A retired patch takes the histories of the runs from before it along
(docs/upgrades.md, "Retiring a patch").

The long workflows that follow each new build (workers.main.AUTO_UPGRADING: the outbox
relay, weekly reviews, surge investigations) have saved histories too, in a folder each
(`histories/relay/`, `review/`, `surge/`), recorded by their own tests; all replay here.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import (
    Interceptor,
    Replayer,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)
from temporalio.workflow import ActivityHandle

from activities.delivery import words_of
from activities.messages import MessageTemplates
from tests.codec_keys import CONVERTER
from tests.workflows.conftest import AGENT, TECH, Desk, resolve
from workflows.activity_names import APPEND_EVENTS, CLAIM_INTAKE
from workflows.contracts import (
    Assign,
    Classify,
    CustomerReply,
    Dispatch,
    EngagePartner,
    EventBatch,
    Handoff,
    PartnerCallback,
    PostProgress,
    RecordReviewDecision,
    Respond,
)
from workflows.policy import ServicePolicy
from workflows.relay import OutboxRelayWorkflow
from workflows.review import WeeklyReviewKickoffWorkflow, WeeklyReviewWorkflow
from workflows.sandbox import workflow_runner
from workflows.surge import SurgeCheckWorkflow, SurgeInvestigationWorkflow
from workflows.ticket import TicketWorkflow
from workflows.vocabulary import Category, CustomerReplyKind, Priority, Topic

HISTORIES = Path(__file__).parent / "histories"
RESOLVE = resolve()


def replayer() -> Replayer:
    return Replayer(
        workflows=[TicketWorkflow],
        data_converter=CONVERTER,
        workflow_runner=workflow_runner(),
    )


async def scenario_histories(desk: Desk) -> dict[str, WorkflowHistory]:
    """Lifecycles covering every timer, update, signal and activity the ticket uses."""
    tickets = desk.tickets
    standard = (await desk.open("支付失败", "付款时一直报错, 无法支付")).ticket_id
    await tickets.act(standard, Respond(actor=AGENT, message="正在查看"))
    await tickets.act(standard, RESOLVE)
    await tickets.customer_reply(
        standard, CustomerReply(reply_id="r", kind=CustomerReplyKind.SOLVED)
    )
    await desk.settled(standard)
    for kind, score in ((CustomerReplyKind.CSAT, 5), (CustomerReplyKind.NPS, 9)):
        await tickets.customer_reply(
            standard, CustomerReply(reply_id=kind.value, kind=kind, score=score)
        )
    await desk.outcome(standard)

    busy = (await desk.open("全量用户无法下单", "所有用户都无法下单", channel="email")).ticket_id
    await tickets.act(busy, Dispatch(actor=AGENT, departments=["tech", "finance"], note="outage"))
    expected_by = await desk.env.get_current_time() + timedelta(days=2)
    await tickets.act(
        busy, EngagePartner(actor=AGENT, partner="unionpay", problem="p", expected_by=expected_by)
    )
    await desk.skip(timedelta(days=2), busy)
    await tickets.partner_callback(
        busy, PartnerCallback(callback_id="c", partner="unionpay", answer="ok")
    )
    for department in ("tech", "finance"):
        await tickets.act(
            busy, PostProgress(actor=TECH, department=department, note="done", work_order_done=True)
        )
    await tickets.act(busy, RESOLVE)
    await tickets.customer_reply(
        busy, CustomerReply(reply_id="n", kind=CustomerReplyKind.NOT_SOLVED)
    )
    await tickets.act(busy, RESOLVE)
    await desk.skip(timedelta(hours=73))
    await desk.outcome(busy)

    # The SLA clock: paused on a question, resumed by the answer, raised to E, warned,
    # breached and escalated, reviewed with a checkpoint, resolved.
    clock = (await desk.open("支付失败 无法付款", "付款一直失败")).ticket_id
    await tickets.act(clock, Assign(actor=AGENT, agent_id="agent-9"))
    await tickets.act(clock, Respond(actor=AGENT, message="哪张卡？", awaiting_customer=True))
    await desk.skip(timedelta(hours=1), clock)
    await tickets.customer_reply(
        clock, CustomerReply(reply_id="m", kind=CustomerReplyKind.MESSAGE, text="招行")
    )
    await tickets.act(
        clock,
        Classify(
            actor=AGENT,
            category=Category.TECHNICAL_FAULT,
            topic=Topic.PAYMENT,
            priority=Priority.E,
            reason="整体故障",
        ),
    )
    await desk.skip(timedelta(hours=3), clock)
    await desk.skip(timedelta(hours=22), clock)
    await tickets.act(
        clock,
        RecordReviewDecision(actor=AGENT, decision="wait", next_checkpoint=timedelta(hours=48)),
    )
    await tickets.act(clock, RESOLVE)
    await tickets.customer_reply(clock, CustomerReply(reply_id="s", kind=CustomerReplyKind.SOLVED))
    await desk.outcome(clock)
    return {
        "standard_lifecycle": await tickets.handle(standard).fetch_history(),
        "departments_partner_reopen_autoclose": await tickets.handle(busy).fetch_history(),
        "sla_clock": await tickets.handle(clock).fetch_history(),
    }


async def test_fresh_histories_replay(desk: Desk) -> None:
    histories = await scenario_histories(desk)
    if os.environ.get("TICKETFLOW_RECORD_HISTORIES"):
        HISTORIES.mkdir(exist_ok=True)
        for name, history in histories.items():
            (HISTORIES / f"{name}.json").write_text(history.to_json())
    for history in histories.values():
        await replayer().replay_workflow(history)


SAVED = {path.stem: path.read_text() for path in sorted(HISTORIES.glob("*.json"))}


PATCH_MARKERS = ("every-reply-recorded", "sla-calendar", "model-classification")
CLAIMED_LOCALLY = "claim-as-local-activity"
PEOPLE_FIRST = "people-first-priority"


def _scheduled(text: str, activity_type: str) -> bool:
    """Whether a saved run scheduled this activity type as an activity task."""
    return f'"name": "{activity_type}"' in text


def patch_markers(history: WorkflowHistory) -> list[tuple[str, bool]]:
    """The patch markers a run recorded: each patch id, and whether it was deprecated."""
    found = []
    for event in history.events:
        attributes = event.marker_recorded_event_attributes
        if event.HasField("marker_recorded_event_attributes") and (
            attributes.marker_name == "core_patch"
        ):
            [data] = attributes.details["patch-data"].payloads
            marker = json.loads(data.data)
            found.append((marker["id"], marker["deprecated"]))
    return found


def test_histories_are_saved() -> None:
    for name in ("standard_lifecycle", "departments_partner_reopen_autoclose", "sla_clock"):
        # Recorded by today's code: the retired patches' markers, deprecated, where
        # `deprecate_patch` records them; the calls' next stage (removed) replays these.
        today = patch_markers(WorkflowHistory.from_json(name, SAVED[name]))
        assert {(marker, True) for marker in PATCH_MARKERS} <= set(today)
        # Recorded while the patches were live (`workflow.patched`): runs like these may
        # still be open when a worker upgrades, until `ticketflow tickets-before` says none.
        before = f"{name}.patched_markers"
        patched = patch_markers(WorkflowHistory.from_json(before, SAVED[before]))
        assert {(marker, False) for marker in PATCH_MARKERS} <= set(patched)
        # Both classify inside a workflow task: a local activity's marker.
        assert '"core_local_activity"' in SAVED[name]
        assert '"core_local_activity"' in SAVED[before]
        # Today's runs claim their intake key as a local activity; runs recorded before
        # the patch (still open when their worker upgrades) claimed it as an activity.
        assert (CLAIMED_LOCALLY, False) in today
        earlier = f"{name}.claim_activity"
        assert CLAIMED_LOCALLY not in {
            marker
            for marker, _ in patch_markers(WorkflowHistory.from_json(earlier, SAVED[earlier]))
        }
        assert _scheduled(SAVED[earlier], CLAIM_INTAKE) and not _scheduled(
            SAVED[name], CLAIM_INTAKE
        )
        # Today's runs settle at the quiet priority once a person's input is stored;
        # runs recorded before that patch (still open when their worker upgrades) did not.
        assert (PEOPLE_FIRST, False) in today
        unsettled = f"{name}.no_priority"
        assert PEOPLE_FIRST not in {
            marker
            for marker, _ in patch_markers(WorkflowHistory.from_json(unsettled, SAVED[unsettled]))
        }
    # Runs from before any of the ticket's patches are gone with their branches.
    assert not [name for name in SAVED if ".before_" in name or "one_by_one" in name]
    for folder in ("relay", "review", "surge"):
        assert list((HISTORIES / folder).glob("*.json")), f"no saved {folder} history"


@pytest.mark.parametrize("name", sorted(SAVED))
async def test_saved_histories_replay(name: str) -> None:
    history = WorkflowHistory.from_json(name, SAVED[name])
    result = await replayer().replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{name}: {result.replay_failure}"


class _RecordAppends(Interceptor):
    """Collects the events of every append the workflow schedules, replay included."""

    def __init__(self) -> None:
        self.appended: list[tuple[int, str]] = []

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        appended = self.appended

        class Outbound(WorkflowOutboundInterceptor):
            def start_activity(self, input: StartActivityInput) -> ActivityHandle[Any]:
                if input.activity == APPEND_EVENTS:
                    [batch] = input.args
                    appended.extend((e.seq, e.type.value) for e in batch.events)
                return self.next.start_activity(input)

        class Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(Outbound(outbound))

        return Inbound


async def _stored_by_history(history: WorkflowHistory) -> list[tuple[int, str]]:
    """The events each append of the recorded run carried, decoded with today's models
    (older payload shapes are upcast)."""
    stored: list[tuple[int, str]] = []
    for event in history.events:
        if not event.HasField("activity_task_scheduled_event_attributes"):
            continue
        attributes = event.activity_task_scheduled_event_attributes
        if attributes.activity_type.name != APPEND_EVENTS:
            continue
        [batch] = await CONVERTER.decode(list(attributes.input.payloads), [EventBatch])
        stored.extend((e.seq, e.type.value) for e in batch.events)
    return stored


@pytest.mark.parametrize("name", sorted(SAVED))
async def test_replay_numbers_events_as_the_recorded_run_did(name: str) -> None:
    """Commands alone do not show it: a run that upgrades mid-way must go on numbering its
    events as it did, or its next appends leave gaps (or collide) in the event store."""
    history = WorkflowHistory.from_json(name, SAVED[name])
    recorder = _RecordAppends()
    replaying = Replayer(
        workflows=[TicketWorkflow],
        data_converter=CONVERTER,
        workflow_runner=workflow_runner(),
        interceptors=[recorder],
    )
    await replaying.replay_workflow(history)
    stored = await _stored_by_history(history)
    assert stored, "the recorded run appended events"
    assert recorder.appended == stored


async def _recorded_hand_offs(history: WorkflowHistory) -> list[Handoff]:
    """Every hand-off the recorded run passed to an activity, decoded with today's models."""
    found: list[Handoff] = []
    for event in history.events:
        if not event.HasField("activity_task_scheduled_event_attributes"):
            continue
        attributes = event.activity_task_scheduled_event_attributes
        if attributes.activity_type.name == APPEND_EVENTS:
            [batch] = await CONVERTER.decode(list(attributes.input.payloads), [EventBatch])
            found += batch.handoffs
    return found


async def test_recorded_hand_offs_still_render() -> None:
    """Hand-offs queued before staff templates carried their own English sentence: rows
    of them still waiting in an outbox are delivered with it, unchanged."""
    templates = MessageTemplates.load()
    policy = ServicePolicy()
    rendered = 0
    for name, text in SAVED.items():
        for handoff in await _recorded_hand_offs(WorkflowHistory.from_json(name, text)):
            row_key = f"{handoff.dedupe_key}:{handoff.recipients[0]}"
            payload = handoff.model_dump(mode="json")
            locale, words = words_of(row_key, handoff.kind.value, payload, templates, policy)
            if handoff.facts is None:
                assert (locale, words) == (None, handoff.summary)
            else:
                assert locale == "zh-Hans" and handoff.ticket_id in words
            rendered += 1
    assert rendered > 0


# Saved by the tests of each (test_relay.py, test_review.py, test_surge.py).
LONG_LIVED = {
    f"{p.parent.name}/{p.stem}": p.read_text() for p in sorted(HISTORIES.glob("*/*.json"))
}


def long_lived_replayer() -> Replayer:
    return Replayer(
        workflows=[
            OutboxRelayWorkflow,
            WeeklyReviewWorkflow,
            WeeklyReviewKickoffWorkflow,
            SurgeCheckWorkflow,
            SurgeInvestigationWorkflow,
        ],
        data_converter=CONVERTER,
        workflow_runner=workflow_runner(),
    )


@pytest.mark.parametrize("name", sorted(LONG_LIVED))
async def test_saved_histories_of_the_auto_upgrading_workflows_replay(name: str) -> None:
    """The relay, reviews and surges move to each new build as soon as it is current: every
    history saved from an earlier build replays on today's code."""
    history = WorkflowHistory.from_json(name, LONG_LIVED[name])
    result = await long_lived_replayer().replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{name}: {result.replay_failure}"
