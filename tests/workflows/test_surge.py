"""The surge alert on the real dev server: counts from PostgreSQL, one investigation per
episode, none for small numbers, and one Schedule however many workers start."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import (
    Client,
    ScheduleActionStartWorkflow,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowHistory,
)
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.database import Pool
from activities.delivery import DeliveryConfig, OutboxRelay, words_of
from activities.messages import MessageTemplates
from tests.codec_keys import CONVERTER
from tests.conftest import schema_of_its_own
from tests.waiting import eventually
from workers.main import Workers, build_worker, ensure_surge_schedule, surge_schedule_id
from workflows import search_attributes as sa
from workflows.contracts import DeliveryFailure
from workflows.policy import ServicePolicy, SurgePolicy, is_surge, rise_p_value
from workflows.sandbox import workflow_runner
from workflows.surge import (
    Findings,
    SurgeCheckInput,
    SurgeCheckWorkflow,
    SurgeInvestigationWorkflow,
    problems,
)
from workflows.surge_contracts import Openings

POLICY = ServicePolicy()
HISTORIES = Path(__file__).parent / "histories" / "surge"


def test_the_rule_needs_growth_volume_and_a_real_rise() -> None:
    assert is_surge(POLICY, 40, 20)  # +100 %, p = 0.007
    assert not is_surge(POLICY, 30, 20)  # +50 %, yet p = 0.10: within chance
    assert not is_surge(POLICY, 3, 2)  # too few to mean anything
    assert not is_surge(POLICY, 25, 20)  # +25 %: under the threshold
    assert rise_p_value(40, 20) == pytest.approx(0.00674, abs=1e-4)


def counts(dimension: str, value: str, before: int, now: int, *parts: Openings) -> Openings:
    return Openings(
        dimension=dimension,
        value=value,
        last_24h=now,
        day_before=before,
        week_before=before,
        parts=list(parts),
    )


def test_a_category_is_its_own_problem_unless_its_rising_topics_explain_it() -> None:
    def found(*counted: Openings) -> list[tuple[str, list[str]]]:
        return [
            (p.surge.value, [c.value for c in p.explains]) for p in problems(POLICY, list(counted))
        ]

    # Two topics rose within technical faults, and nothing else in it: both name it.
    payment, code = counts("topic", "payment", 20, 40), counts("topic", "verification_code", 20, 40)
    faults = counts("category", "technical_fault", 40, 80, payment, code)
    assert found(payment, code, faults) == [
        ("payment", ["technical_fault"]),
        ("verification_code", ["technical_fault"]),
    ]
    # The rest of the category rose too (login 20 -> 40 within it, 60 -> 60 elsewhere,
    # so not the topic): a problem of its own.
    login = counts("topic", "login", 20, 40)
    faults = counts("category", "technical_fault", 40, 80, payment, login)
    assert found(payment, faults) == [("payment", []), ("technical_fault", [])]
    # Nothing rose beyond chance: no problem.
    assert found(counts("topic", "login", 8, 14), counts("category", "complaint", 8, 14)) == []


@pytest.fixture
async def counted(database_url: str) -> AsyncIterator[Pool]:
    async with schema_of_its_own(database_url, "surge") as pool:
        yield pool


async def opened(pool: Pool, category: str, topic: str, count: int, hours_ago: float) -> None:
    at = datetime.now(UTC) - timedelta(hours=hours_ago)
    await pool.executemany(
        "INSERT INTO tickets (ticket_id, status, category, topic, priority, opened_at,"
        " last_seq, updated_at) VALUES ($1, 'new', $2, $3, 'B', $4, 1, $4)",
        [(f"ticket-{uuid.uuid4().hex[:24]}", category, topic, at) for _ in range(count)],
    )


async def investigations(client: Client, task_queue: str, expected: int) -> list[str]:
    query = f"WorkflowType = 'SurgeInvestigationWorkflow' AND TaskQueue = '{task_queue}'"

    async def listed() -> list[str]:
        return sorted([w.id async for w in client.list_workflows(query)])

    # Visibility is eventually consistent: a bounded wait.
    return await eventually(listed, lambda found: len(found) >= expected, within=5)


async def check(client: Client, task_queue: str, policy: ServicePolicy) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        SurgeCheckWorkflow.run,
        SurgeCheckInput(policy=policy),
        id=f"check-{uuid.uuid4()}",
        task_queue=task_queue,
    )


async def test_one_investigation_per_problem_naming_the_category_its_topic_explains(
    dev_env: WorkflowEnvironment, counted: Pool
) -> None:
    client = dev_env.client
    task_queue = f"surge-{uuid.uuid4()}"
    # Verification codes: 20 yesterday, 40 today, all technical faults: one problem.
    await opened(counted, "technical_fault", "verification_code", 20, hours_ago=30)
    await opened(counted, "technical_fault", "verification_code", 40, hours_ago=2)
    # Login: 2 yesterday, 3 today: nothing.
    await opened(counted, "business_inquiry", "login", 2, hours_ago=30)
    await opened(counted, "business_inquiry", "login", 3, hours_ago=2)
    # Account security: 24 -> 42, yet no topic of it rose beyond chance (8 -> 14 each):
    # the category's own problem.
    for topic in ("order", "refund", "membership"):
        await opened(counted, "account_security", topic, 8, hours_ago=30)
        await opened(counted, "account_security", topic, 14, hours_ago=2)
    worker: Workers = build_worker(client, task_queue, counted, POLICY)
    async with worker:
        checked = await check(client, task_queue, POLICY)
        first = await checked.result()
        again = await (await check(client, task_queue, POLICY)).result()
        assert sorted(i.rsplit("-", 1)[0] for i in first) == [
            "surge-category-account_security",
            "surge-topic-verification_code",
        ]
        assert again == []  # the same episode: still one each
        assert await investigations(client, task_queue, 2) == sorted(first)
        topic = next(i for i in first if i.startswith("surge-topic-"))
        handle = client.get_workflow_handle(topic)
        description = await handle.describe()
        assert description.status is WorkflowExecutionStatus.RUNNING
        attributes = description.typed_search_attributes
        assert attributes.get(sa.TICKET_PRIORITY) == "E"
        assert attributes.get(sa.TICKET_TOPIC) == "verification_code"
        assert attributes.get(sa.TICKET_CATEGORY) == "technical_fault"
        rows = await counted.fetch(
            "SELECT kind, channel_or_recipient, payload FROM outbox WHERE ticket_id = $1", topic
        )
        assert {r["kind"] for r in rows} == {"emergency_group"}
        assert len(rows) == len(POLICY.emergency_group)  # the group convened once
        # The group is told in the company's language, one sentence for both problems.
        row = rows[0]
        locale, said = words_of(
            f"{topic}:emergency_group:{row['channel_or_recipient']}",
            row["kind"],
            row["payload"],
            MessageTemplates.load(),
            POLICY,
        )
        assert locale == "zh-Hans"
        assert said.startswith("异常激增：verification_code 最近 24 小时 40 张工单")
        assert "也解释了 technical_fault 的增长" in said
        await handle.execute_update(
            SurgeInvestigationWorkflow.close, Findings(findings="SMS gateway quota exhausted")
        )
        assert await handle.result() == "SMS gateway quota exhausted"
        await replay_with_saved(
            {"check": await checked.fetch_history(), "investigation": await handle.fetch_history()}
        )


async def test_an_alert_that_cannot_be_delivered_tells_the_supervisors(
    dev_env: WorkflowEnvironment, counted: Pool
) -> None:
    client = dev_env.client
    task_queue = f"surge-{uuid.uuid4()}"
    await opened(counted, "technical_fault", "payment", 12, hours_ago=30)
    await opened(counted, "technical_fault", "payment", 36, hours_ago=2)
    # The check's policy convenes a team this worker has no address for: its alert can
    # never be delivered.
    policy = POLICY.model_copy(update={"emergency_group": ["tech", "night-desk"]})
    worker: Workers = build_worker(client, task_queue, counted, POLICY)
    relay = OutboxRelay(counted, POLICY, MessageTemplates.load(), DeliveryConfig(), client)
    async with worker:
        [opened_id] = await (await check(client, task_queue, policy)).result()
        handle = client.get_workflow_handle(opened_id)

        async def alerts() -> list[asyncpg.Record]:
            await relay.deliver_once()
            return await counted.fetch(
                "SELECT channel_or_recipient, payload FROM outbox"
                " WHERE ticket_id = $1 AND kind = 'delivery_failed'",
                opened_id,
            )

        # The relay reports, the investigation answers: a bounded wait.
        [alert] = await eventually(alerts, bool, within=10)
        assert alert["channel_or_recipient"] == POLICY.departments[POLICY.supervisor_queue]
        assert "night-desk" in alert["payload"]["facts"]["destination"]
        failed = await counted.fetchrow(
            "SELECT failed_at, last_error FROM outbox WHERE ticket_id = $1"
            " AND channel_or_recipient = 'unroutable:night-desk'",
            opened_id,
        )
        assert failed is not None and failed["failed_at"] is not None
        # Told again (the relay redelivers a signal), or told that the alert itself failed:
        # no second alert, and no loop to the same unreachable supervisors.
        [key] = await counted.fetch(
            "SELECT dedupe_key FROM outbox WHERE ticket_id = $1 AND kind = 'delivery_failed'",
            opened_id,
        )
        for kind, dedupe_key in (
            ("emergency_group", f"{opened_id}:emergency_group:night-desk"),
            ("delivery_failed", key["dedupe_key"]),
        ):
            await handle.signal(
                "delivery_failed",
                DeliveryFailure(
                    dedupe_key=dedupe_key, kind=kind, destination="x", attempts=1, error="e"
                ),
            )
        await handle.execute_update(SurgeInvestigationWorkflow.close, Findings(findings="quota"))
        await handle.result()
        assert len(await alerts()) == 1
        await replay_with_saved({"investigation_failed_alert": await handle.fetch_history()})


async def replay_with_saved(histories: dict[str, WorkflowHistory]) -> None:
    """Today's histories replay, and so do those saved from earlier builds: investigations
    run for days and follow the current build (workers.main.AUTO_UPGRADING), so a change
    to their commands shows here until it is guarded with workflow.patched."""
    if os.environ.get("TICKETFLOW_RECORD_HISTORIES"):
        HISTORIES.mkdir(exist_ok=True)
        for name, history in histories.items():
            (HISTORIES / f"{name}.json").write_text(history.to_json())
    saved = [
        WorkflowHistory.from_json(path.stem, path.read_text())
        for path in sorted(HISTORIES.glob("*.json"))
    ]
    # Recorded before the one-per-problem patch (a topic and its category investigated
    # apart) and before the one-outbox-path patch (the emergency group convened by its
    # own activity, with no failure path).
    assert {
        "check",
        "check.before_one_per_problem",
        "investigation",
        "investigation.before_one_outbox_path",
        "investigation_failed_alert",
    } <= {history.workflow_id for history in saved}
    for history in [*histories.values(), *saved]:
        await Replayer(
            workflows=[SurgeCheckWorkflow, SurgeInvestigationWorkflow],
            data_converter=CONVERTER,
            workflow_runner=workflow_runner(),
        ).replay_workflow(history)


async def test_two_worker_starts_leave_one_schedule_that_follows_the_latest_policy(
    dev_env: WorkflowEnvironment,
) -> None:
    client = dev_env.client
    task_queue = f"surge-{uuid.uuid4()}"
    await ensure_surge_schedule(client, task_queue, POLICY)
    later = POLICY.model_copy(
        update={
            "surge": SurgePolicy(check_every=timedelta(minutes=15), min_count=25),
            "time_zone": "Asia/Taipei",
        }
    )
    await ensure_surge_schedule(client, task_queue, later)
    handle = client.get_schedule_handle(surge_schedule_id(task_queue))
    try:
        described = await handle.describe()
        assert described.schedule.spec.time_zone_name == "Asia/Taipei"
        [interval] = described.schedule.spec.intervals
        assert interval.every == timedelta(minutes=15)
        # Its runs check with the latest policy too.
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        [start] = await CONVERTER.decode(action.args, [SurgeCheckInput])
        assert start.policy.surge.min_count == 25
        ids = [s.id async for s in await client.list_schedules()]
        assert ids.count(surge_schedule_id(task_queue)) == 1
    finally:
        await handle.delete()
