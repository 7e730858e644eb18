"""The activities as workflow code calls them: one typed stub per activity.

Workflows pass these to `workflow.execute_activity` (or `execute_local_activity`) by
reference, so the SDK takes the activity's name and result type from the stub and mypy
checks the argument and result at every call. The worker registers the real
implementation under the same name (activities/, wired by `activities.all_activities`
and the outbox relay); a stub never runs, and raises if it ever does.
tests/workflows/test_activity_stubs.py holds each stub to its implementation's name and
types, so the two cannot drift apart.

Workflow code never imports the activities package (tests/test_layers.py): this module
must stay cheap and sandbox-safe, like the contracts it names. Import it through
`workflow.unsafe.imports_passed_through()`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import NoReturn

from temporalio import activity
from temporalio.common import RetryPolicy

from workflows import activity_names as names
from workflows.contracts import (
    EventBatch,
    Handoff,
    HandoffBatch,
    IntakeClaim,
    IntakeClaimResult,
    ModelClassification,
    RelayRound,
    TextToClassify,
)
from workflows.review_contracts import ReviewRecord, Sample, SampleRequest
from workflows.surge_contracts import Openings, OpeningsRequest

# Writes to our own PostgreSQL (tickets' appends and intake claims, reviews' samples and
# records): quick, and worth retrying for as long as it is down. Bad data will not get
# better by retrying, so it fails at once.
STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=["BadData"],
)


def _registered_by_the_worker(name: str) -> NoReturn:
    raise NotImplementedError(
        f"{name} is a workflow-side stub: the worker registers its implementation"
    )


# ---------------------------------------------------------------- tickets (event store)


@activity.defn(name=names.CLAIM_INTAKE)
async def claim_intake(claim: IntakeClaim) -> IntakeClaimResult:
    """Claim an intake's idempotency key for good (activities/event_store.py)."""
    _registered_by_the_worker(names.CLAIM_INTAKE)


@activity.defn(name=names.APPEND_EVENTS)
async def append_events(batch: EventBatch) -> int:
    """Store one drain's events with their outbox rows (activities/event_store.py)."""
    _registered_by_the_worker(names.APPEND_EVENTS)


@activity.defn(name=names.CLASSIFY_TEXT)
async def classify_text(text: TextToClassify) -> ModelClassification:
    """The learned classifier's reading of an intake (activities/classifier.py)."""
    _registered_by_the_worker(names.CLASSIFY_TEXT)


# ---------------------------------------------------------------- surges


@activity.defn(name=names.COUNT_OPENINGS)
async def count_openings(request: OpeningsRequest) -> list[Openings]:
    """Tickets opened per category and topic, now and before (activities/indicators.py)."""
    _registered_by_the_worker(names.COUNT_OPENINGS)


@activity.defn(name=names.SEND_HANDOFFS)
async def send_handoffs(batch: HandoffBatch) -> None:
    """Hand-offs of a workflow without a store of its own, into the outbox
    (activities/outbox.py)."""
    _registered_by_the_worker(names.SEND_HANDOFFS)


@activity.defn(name=names.CONVENE_EMERGENCY_GROUP)
async def convene_emergency_group(handoff: Handoff) -> None:
    """The one per-kind hand-off activity workflow code still calls: surge investigations
    from before the `surge-one-outbox-path` patch (activities/outbox.py)."""
    _registered_by_the_worker(names.CONVENE_EMERGENCY_GROUP)


# ---------------------------------------------------------------- weekly reviews


@activity.defn(name=names.SAMPLE_WEEK)
async def sample_week(request: SampleRequest) -> Sample:
    """The week's typical tickets (activities/review_store.py)."""
    _registered_by_the_worker(names.SAMPLE_WEEK)


@activity.defn(name=names.RECORD_REVIEW)
async def record_review(record: ReviewRecord) -> None:
    """A review's entries, state and reminders, in one go (activities/review_store.py)."""
    _registered_by_the_worker(names.RECORD_REVIEW)


# ---------------------------------------------------------------- the outbox relay


@activity.defn(name=names.DELIVER_DUE)
async def deliver_due() -> RelayRound:
    """Deliver due outbox rows for one round (activities/delivery.py)."""
    _registered_by_the_worker(names.DELIVER_DUE)
