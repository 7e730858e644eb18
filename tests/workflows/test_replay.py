"""Determinism: histories recorded from earlier versions must replay on today's code.

`tests/workflows/histories/*.json` are real histories of ticket lifecycles. A change to
TicketWorkflow that alters its commands fails here until it is guarded with
`workflow.patched(...)`. Record new ones after a deliberate, guarded change with
`TICKETFLOW_RECORD_HISTORIES=1 pytest tests/workflows/test_replay.py`, after renaming
the previous recordings to `<scenario>.<what changed>.json` so they keep replaying.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.workflows.conftest import AGENT, TECH, Desk, resolve
from workflows.contracts import (
    CustomerReply,
    CustomerReplyKind,
    Dispatch,
    EngagePartner,
    PartnerCallback,
    PostProgress,
    Respond,
)
from workflows.sandbox import workflow_runner
from workflows.ticket import TicketWorkflow

HISTORIES = Path(__file__).parent / "histories"
RESOLVE = resolve()


def replayer() -> Replayer:
    return Replayer(
        workflows=[TicketWorkflow],
        data_converter=pydantic_data_converter,
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
    return {
        "standard_lifecycle": await tickets.handle(standard).fetch_history(),
        "departments_partner_reopen_autoclose": await tickets.handle(busy).fetch_history(),
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


def test_histories_are_saved() -> None:
    scenarios = {"standard_lifecycle", "departments_partner_reopen_autoclose"}
    assert scenarios <= set(SAVED)
    # Recorded before the "effects-stored-with-events" patch (one activity per message
    # and hand-off) and before the "feedback-window" patch (the run ends at closing).
    # Runs like these may still be open when a worker upgrades.
    for before in ("effects_one_by_one", "before_feedback_window"):
        assert {f"{name}.{before}" for name in scenarios} <= set(SAVED)


@pytest.mark.parametrize("name", sorted(SAVED))
async def test_saved_histories_replay(name: str) -> None:
    history = WorkflowHistory.from_json(name, SAVED[name])
    result = await replayer().replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{name}: {result.replay_failure}"
