"""The weekly review's PostgreSQL side: the week's candidate tickets, and the review's
record (its entries, its current state, its reminders in the outbox).

A thin adapter: the choice of the sample is `workflows.review_rules.stratified_sample`,
a pure function of the candidates and the week.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import structlog
from temporalio import activity

from activities.database import Pool
from activities.outbox import Outbox
from workflows import activity_names as names
from workflows.policy import ServicePolicy, is_surge
from workflows.review_contracts import (
    Candidates,
    ReviewRecord,
    ReviewState,
    Sample,
    SampleReason,
    SampleRequest,
)
from workflows.review_rules import stratified_sample

log = structlog.get_logger(__name__)

# Tickets with an event of a kind in the period: the simple strata.
_WITH_EVENT = """
    SELECT DISTINCT ticket_id FROM ticket_events
    WHERE type = $1 AND occurred_at >= $2 AND occurred_at < $3
"""
_LOW_SATISFACTION = """
    SELECT DISTINCT ticket_id FROM ticket_events
    WHERE occurred_at >= $1 AND occurred_at < $2
      AND ((type = 'csat_recorded' AND (data->>'score')::int <= $3)
        OR (type = 'nps_recorded' AND (data->>'score')::int <= $4))
"""
# The root cause each ticket was last resolved or closed with (a long-term plan closes
# with one too), in the period.
_ROOT_CAUSES = """
    SELECT DISTINCT ON (ticket_id) ticket_id, data->>'root_cause' AS root_cause
    FROM ticket_events
    WHERE type IN ('resolved', 'closed') AND occurred_at >= $1 AND occurred_at < $2
      AND data->>'root_cause' IS NOT NULL
    ORDER BY ticket_id, seq DESC
"""
# Tickets opened per category, this week and the week before.
_OPENED = """
    SELECT ticket_id, data->>'category' AS category, occurred_at >= $2 AS this_week
    FROM ticket_events
    WHERE type = 'ticket_opened' AND occurred_at >= $1 AND occurred_at < $3
"""
_TAGS = "SELECT ticket_id, tag FROM tickets WHERE ticket_id = ANY($1::text[])"

_INSERT_ENTRIES = """
    INSERT INTO review_entries
        (review_id, seq, occurred_at, kind, actor_id, actor_role, ticket_id, follow_up, text)
    SELECT * FROM unnest($1::text[], $2::int[], $3::timestamptz[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::int[], $9::text[])
    ON CONFLICT (review_id, seq) DO NOTHING
"""
# The state only moves forward: a retried or late write of an older state changes nothing.
_UPSERT_STATE = """
    INSERT INTO weekly_reviews (review_id, week, state, last_seq, completed_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, now())
    ON CONFLICT (review_id) DO UPDATE
    SET state = EXCLUDED.state, last_seq = EXCLUDED.last_seq,
        completed_at = EXCLUDED.completed_at, updated_at = now()
    WHERE weekly_reviews.last_seq <= EXCLUDED.last_seq
"""


class ReviewStore:
    def __init__(self, pool: Pool, policy: ServicePolicy) -> None:
        self._pool = pool
        self._outbox = Outbox(pool, policy)

    async def candidates(self, start: datetime, end: datetime, policy: ServicePolicy) -> Candidates:
        review = policy.review
        found = Candidates()
        async with self._pool.acquire() as connection:
            for reason, kind in (
                (SampleReason.SLA_BREACHED, "sla_breached"),
                (SampleReason.REOPENED, "reopened"),
                (SampleReason.ESCALATED, "upgrade_review_convened"),
            ):
                rows = await connection.fetch(_WITH_EVENT, kind, start, end)
                found.by_reason[reason] = [row["ticket_id"] for row in rows]
            rows = await connection.fetch(
                _LOW_SATISFACTION, start, end, review.low_csat, review.detractor_nps
            )
            found.by_reason[SampleReason.LOW_SATISFACTION] = [row["ticket_id"] for row in rows]

            resolved = {
                row["ticket_id"]: row["root_cause"]
                for row in await connection.fetch(_ROOT_CAUSES, start, end)
                if row["root_cause"]
            }
            counts = Counter(resolved.values())
            found.root_cause_counts = dict(counts.most_common())
            frequent = {tag for tag, _ in counts.most_common(review.top_root_causes)}
            found.root_causes = resolved
            found.by_reason[SampleReason.FREQUENT_ROOT_CAUSE] = sorted(
                ticket for ticket, tag in resolved.items() if tag in frequent
            )

            opened = await connection.fetch(_OPENED, start - (end - start), start, end)
            now = Counter(row["category"] for row in opened if row["this_week"])
            before = Counter(row["category"] for row in opened if not row["this_week"])
            surged = sorted(c for c in now if is_surge(policy, now[c], before[c]))
            found.surged_categories = surged
            found.by_reason[SampleReason.SURGED_CATEGORY] = sorted(
                row["ticket_id"] for row in opened if row["this_week"] and row["category"] in surged
            )

            every = sorted({t for ids in found.by_reason.values() for t in ids})
            found.tags = {
                row["ticket_id"]: row["tag"]
                for row in await connection.fetch(_TAGS, every)
                if row["tag"] is not None
            }
        return found

    @activity.defn(name=names.SAMPLE_WEEK)
    async def sample_week(self, request: SampleRequest) -> Sample:
        found = await self.candidates(request.period_start, request.period_end, request.policy)
        size = request.policy.review.sample_size
        tickets = stratified_sample(found, size, seed=request.week)
        total = len({t for ids in found.by_reason.values() for t in ids})
        log.info("week sampled", week=request.week, candidates=total, sampled=len(tickets))
        return Sample(
            tickets=tickets,
            root_cause_counts=found.root_cause_counts,
            surged_categories=found.surged_categories,
            candidates=total,
        )

    @activity.defn(name=names.RECORD_REVIEW)
    async def record_review(self, record: ReviewRecord) -> None:
        entries = record.entries
        state = record.state
        async with self._pool.acquire() as connection, connection.transaction():
            if entries:
                await connection.execute(
                    _INSERT_ENTRIES,
                    [e.review_id for e in entries],
                    [e.seq for e in entries],
                    [e.occurred_at for e in entries],
                    [e.kind.value for e in entries],
                    [e.actor.id for e in entries],
                    [e.actor.role.value for e in entries],
                    [e.ticket_id for e in entries],
                    [e.follow_up for e in entries],
                    [e.text for e in entries],
                )
            await connection.execute(
                _UPSERT_STATE,
                record.review_id,
                state.week,
                state.model_dump(mode="json"),
                state.next_seq - 1,
                state.completed_at,
            )
        if record.handoffs:
            await self._outbox.enqueue(record.review_id, self._outbox.rows([], record.handoffs))

    async def review(self, week: str) -> ReviewState | None:
        stored = await self._pool.fetchval("SELECT state FROM weekly_reviews WHERE week = $1", week)
        return None if stored is None else ReviewState.model_validate(stored)

    async def weeks(self) -> list[tuple[str, bool]]:
        rows = await self._pool.fetch(
            "SELECT week, completed_at IS NOT NULL AS complete FROM weekly_reviews"
            " ORDER BY week DESC LIMIT 200"
        )
        return [(row["week"], row["complete"]) for row in rows]
