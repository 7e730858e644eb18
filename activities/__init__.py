"""Activities: every side effect of a ticket (event store, outbox) lives here, with the
library they share with the API (the pool and migrations, templates, signing). The stores
and readers the API uses without a worker are in `stores`, one layer above.

Workflow code never imports this package: it calls typed stubs of these activities
(`workflows.activity_stubs`), registered here under the same names
(`workflows.activity_names`). Importing it stays cheap all the same: asyncpg and the
activity classes load only when a worker calls `all_activities()`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Where a worker keeps its learned classifier (activities.classifier) unless told.
DEFAULT_MODELS = Path(".data/models")

if TYPE_CHECKING:
    from activities.database import Pool
    from workflows.policy import ServicePolicy


def all_activities(
    pool: Pool, policy: ServicePolicy, models: Path | None = None
) -> list[Callable[..., Any]]:
    """Every activity bound to its dependencies, ready for `Worker(activities=...)`."""
    from activities.classifier import LearnedClassifier
    from activities.event_store import EventStore
    from activities.indicators import SurgeCounter
    from activities.outbox import Outbox
    from activities.review_store import ReviewStore

    outbox = Outbox(pool, policy)
    store = EventStore(pool, outbox)
    reviews = ReviewStore(pool, policy)
    return [
        store.claim_intake,
        store.append_events,
        outbox.send_handoffs,
        outbox.notify_customer,
        outbox.open_work_order,
        outbox.remind_department,
        outbox.convene_emergency_group,
        outbox.start_risk_control,
        outbox.convene_upgrade_review,
        outbox.contact_partner,
        outbox.alert_supervisor,
        SurgeCounter(pool).count_openings,
        reviews.sample_week,
        reviews.record_review,
        LearnedClassifier(models or DEFAULT_MODELS).classify_text,
    ]
