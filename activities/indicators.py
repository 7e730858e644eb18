"""Service-health indicators (SPEC §5, ../shared/METRICS.md) from the event store.

Each indicator is one indexed query over the `tickets` read model or `ticket_events`, for
a period `[start, end)`, optionally grouped by one ticket dimension (channel, tier,
category, topic, priority), and reported with its `n` so a manager can tell 100 % of 2
from 100 % of 2,000. Times are calendar seconds.

| indicator | read from |
|---|---|
| volumes | tickets opened in the period |
| first response | the read model's first-response seconds against the policy's target for the ticket's channel and tier (unanswered past the target counts as not within), tickets opened in the period, live and async apart |
| transfers | tickets resolved in the period: share handed to a department at least once, mean transfers |
| resolution | tickets opened in the period: resolved or closed; first contact: with no department and no reopen |
| reopens | tickets resolved in the period that were reopened |
| SLA attainment | per priority, tickets whose SLA fell due in the period (and before now): met, not breached |
| backlog | tickets open at the period's end, by status and age band |
| CSAT, NPS | ratings recorded in the period |
| collaborators | per department, `progress_posted` response seconds; per partner, engagement to final answer |
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field
from temporalio import activity

from activities.database import Pool
from workflows.activity_names import COUNT_OPENINGS
from workflows.policy import ServicePolicy
from workflows.surge_contracts import Openings, OpeningsRequest


class GroupBy(StrEnum):
    CHANNEL = "channel"
    TIER = "tier"
    CATEGORY = "category"
    TOPIC = "topic"
    PRIORITY = "priority"
    # A ticket counts once for every department it went to (none: the `null` group).
    DEPARTMENT = "department"


class Share(BaseModel):
    """`part` of `n`, as a percentage (None when n is 0)."""

    n: int
    part: int
    percent: float | None


class Spread(BaseModel):
    n: int
    median_seconds: float | None
    p90_seconds: float | None


class FirstResponse(BaseModel):
    live: Spread
    live_within_target: Share
    async_: Spread = Field(alias="async")
    async_within_target: Share

    model_config = {"populate_by_name": True}


class Group(BaseModel):
    """The ticket indicators of one group (or of all tickets: key None)."""

    key: str | None
    opened: int
    first_response: FirstResponse
    transferred: Share
    mean_transfers: float | None
    resolved: Share
    first_contact_resolution: Share
    reopened: Share
    csat_satisfied: Share
    nps: int = Field(description="ratings received")
    nps_score: float | None = Field(description="% promoters - % detractors, -100..100")


class SlaAttainment(BaseModel):
    priority: str
    met: Share


class Backlog(BaseModel):
    status: str
    age_band: str
    n: int


class Collaborator(BaseModel):
    kind: str  # department or partner
    name: str
    response: Spread


class ServiceHealth(BaseModel):
    start: datetime
    end: datetime
    group_by: GroupBy | None
    groups: list[Group]
    sla: list[SlaAttainment]
    backlog: list[Backlog]
    collaborators: list[Collaborator]


def _share(n: int, part: int) -> Share:
    return Share(n=n, part=part, percent=None if n == 0 else round(100.0 * part / n, 2))


def _spread(row: Any, prefix: str) -> Spread:
    return Spread(
        n=row[f"{prefix}_n"], median_seconds=row[f"{prefix}_p50"], p90_seconds=row[f"{prefix}_p90"]
    )


# Tickets opened in the period, from the read model alone: the first response's seconds
# are on the row, and the target is the policy's for the ticket's channel and tier
# ($4 live VIP, $5 live standard, $6 async, in seconds). A ticket not answered by its
# target (and the period's end, or now) counts as answered late.
_TICKETS = """
    WITH opened AS (
        SELECT t.resolved_at, t.closed_at, t.transfers, t.reopen_count,
            t.first_response_seconds AS seconds, {key} AS key,
            t.channel = ANY($3::text[]) AS live,
            t.opened_at + make_interval(secs => CASE
                WHEN t.channel = ANY($3::text[]) AND t.tier = 'vip' THEN $4::float8
                WHEN t.channel = ANY($3::text[]) THEN $5::float8
                ELSE $6::float8 END) AS target_at,
            CASE
                WHEN t.channel = ANY($3::text[]) AND t.tier = 'vip' THEN $4::float8
                WHEN t.channel = ANY($3::text[]) THEN $5::float8
                ELSE $6::float8 END AS target_seconds
        FROM tickets t {join} WHERE t.opened_at >= $1 AND t.opened_at < $2
    )
    SELECT key,
        count(*) AS opened,
        count(seconds) FILTER (WHERE live) AS live_n,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) FILTER (WHERE live) AS live_p50,
        percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) FILTER (WHERE live) AS live_p90,
        count(*) FILTER (WHERE live AND (seconds IS NOT NULL OR target_at < LEAST($2, now())))
            AS live_due,
        count(*) FILTER (WHERE live AND seconds <= target_seconds) AS live_within,
        count(seconds) FILTER (WHERE NOT live) AS async_n,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) FILTER (WHERE NOT live)
            AS async_p50,
        percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) FILTER (WHERE NOT live)
            AS async_p90,
        count(*) FILTER (WHERE NOT live AND (seconds IS NOT NULL OR target_at < LEAST($2, now())))
            AS async_due,
        count(*) FILTER (WHERE NOT live AND seconds <= target_seconds) AS async_within,
        count(*) FILTER (WHERE resolved_at IS NOT NULL OR closed_at IS NOT NULL) AS resolved,
        count(*) FILTER (
            WHERE (resolved_at IS NOT NULL OR closed_at IS NOT NULL)
              AND transfers = 0 AND reopen_count = 0
        ) AS first_contact
    FROM opened
    GROUP BY key
"""

# Tickets resolved in the period: transfers and reopens.
_RESOLVED = """
    SELECT {key} AS key, count(*) AS n,
        count(*) FILTER (WHERE transfers > 0) AS transferred,
        avg(transfers)::float AS mean_transfers,
        count(*) FILTER (WHERE reopen_count > 0) AS reopened
    FROM tickets t {join} WHERE t.resolved_at >= $1 AND t.resolved_at < $2
    GROUP BY 1
"""

# Ratings recorded in the period, grouped by their ticket's dimension.
_RATINGS = """
    SELECT {key} AS key,
        count(*) FILTER (WHERE e.type = 'csat_recorded') AS csat_n,
        count(*) FILTER (WHERE e.type = 'csat_recorded' AND (e.data ->> 'score')::int >= 4)
            AS csat_satisfied,
        count(*) FILTER (WHERE e.type = 'nps_recorded') AS nps_n,
        count(*) FILTER (WHERE e.type = 'nps_recorded' AND (e.data ->> 'score')::int >= 9)
            AS promoters,
        count(*) FILTER (WHERE e.type = 'nps_recorded' AND (e.data ->> 'score')::int <= 6)
            AS detractors
    FROM ticket_events e JOIN tickets t USING (ticket_id) {join}
    WHERE e.type IN ('csat_recorded', 'nps_recorded')
      AND e.occurred_at >= $1 AND e.occurred_at < $2
    GROUP BY 1
"""

# SLA milestones that fell due in the period (and are past): met unless breached.
_SLA = """
    SELECT priority, count(*) AS n, count(*) FILTER (WHERE NOT sla_breached) AS met
    FROM tickets
    WHERE sla_due_at >= $1 AND sla_due_at < LEAST($2, now()) AND priority IS NOT NULL
    GROUP BY priority ORDER BY priority
"""

_BACKLOG = """
    SELECT status,
        CASE
            WHEN $1 - opened_at < interval '1 hour' THEN '<1h'
            WHEN $1 - opened_at < interval '1 day' THEN '1h-1d'
            WHEN $1 - opened_at < interval '3 days' THEN '1d-3d'
            WHEN $1 - opened_at < interval '7 days' THEN '3d-7d'
            ELSE '>7d'
        END AS age_band,
        count(*) AS n
    FROM tickets
    WHERE opened_at < $1 AND (closed_at IS NULL OR closed_at >= $1)
    GROUP BY 1, 2 ORDER BY 1, 2
"""

_COLLABORATORS = """
    SELECT 'department' AS kind, e.data ->> 'department' AS name, count(*) AS r_n,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY (e.data ->> 'response_seconds')::float)
            AS r_p50,
        percentile_cont(0.9) WITHIN GROUP (ORDER BY (e.data ->> 'response_seconds')::float)
            AS r_p90
    FROM ticket_events e
    WHERE e.type = 'progress_posted' AND e.occurred_at >= $1 AND e.occurred_at < $2
    GROUP BY 2
    UNION ALL
    SELECT 'partner', a.data ->> 'partner', count(*),
        percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.occurred_at - g.at)),
        percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM a.occurred_at - g.at))
    FROM ticket_events a
    JOIN LATERAL (
        SELECT max(g.occurred_at) AS at FROM ticket_events g
        WHERE g.ticket_id = a.ticket_id AND g.type = 'partner_engaged'
          AND g.data ->> 'partner' = a.data ->> 'partner' AND g.seq < a.seq
    ) g ON g.at IS NOT NULL
    WHERE a.type = 'partner_answered' AND (a.data ->> 'final')::boolean
      AND a.occurred_at >= $1 AND a.occurred_at < $2
    GROUP BY 2
    ORDER BY 1, 2
"""


async def service_health(
    pool: Pool,
    policy: ServicePolicy,
    start: datetime,
    end: datetime,
    group_by: GroupBy | None = None,
) -> ServiceHealth:
    key, join = _grouping(group_by)
    live = [channel.value for channel in policy.live_channels]
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        # asyncpg prepares every statement; after five runs PostgreSQL may plan one for
        # any period, and a plan that fits a day walks a year's events (seen: 200 ms
        # became many seconds at 1,000,000 events). These queries are planned for theirs.
        await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        targets = policy.first_response
        opened = {
            r["key"]: r
            for r in await conn.fetch(
                _TICKETS.format(key=key, join=join),
                start,
                end,
                live,
                targets.live_vip.total_seconds(),
                targets.live_standard.total_seconds(),
                targets.async_any.total_seconds(),
            )
        }
        resolved = {
            r["key"]: r for r in await conn.fetch(_RESOLVED.format(key=key, join=join), start, end)
        }
        ratings = {
            r["key"]: r for r in await conn.fetch(_RATINGS.format(key=key, join=join), start, end)
        }
        sla = await conn.fetch(_SLA, start, end)
        backlog = await conn.fetch(_BACKLOG, end)
        collaborators = await conn.fetch(_COLLABORATORS, start, end)
    groups = []
    for group in sorted(set(opened) | set(resolved) | set(ratings), key=lambda k: k or ""):
        o, r, g = opened.get(group), resolved.get(group), ratings.get(group)
        groups.append(_group(group, o, r, g))
    return ServiceHealth(
        start=start,
        end=end,
        group_by=group_by,
        groups=groups,
        sla=[
            SlaAttainment(priority=row["priority"], met=_share(row["n"], row["met"])) for row in sla
        ],
        backlog=[Backlog(**dict(row)) for row in backlog],
        collaborators=[
            Collaborator(kind=row["kind"], name=row["name"], response=_spread(row, "r"))
            for row in collaborators
        ],
    )


def _grouping(group_by: GroupBy | None) -> tuple[str, str]:
    """The group's key expression, and the join that makes it (departments are a list)."""
    if group_by is None:
        return "NULL::text", ""
    if group_by is GroupBy.DEPARTMENT:
        return "d.department", (
            "CROSS JOIN LATERAL unnest(CASE WHEN cardinality(t.departments) = 0 "
            "THEN ARRAY[NULL::text] ELSE t.departments END) AS d(department)"
        )
    return f"t.{group_by.value}", ""


def _group(key: str | None, o: Any, r: Any, g: Any) -> Group:
    none_spread = Spread(n=0, median_seconds=None, p90_seconds=None)
    nps_n = g["nps_n"] if g else 0
    return Group(
        key=key,
        opened=o["opened"] if o else 0,
        first_response=FirstResponse(
            live=_spread(o, "live") if o else none_spread,
            live_within_target=_share(o["live_due"], o["live_within"]) if o else _share(0, 0),
            async_=_spread(o, "async") if o else none_spread,
            async_within_target=_share(o["async_due"], o["async_within"]) if o else _share(0, 0),
        ),
        transferred=_share(r["n"], r["transferred"]) if r else _share(0, 0),
        mean_transfers=r["mean_transfers"] if r else None,
        resolved=_share(o["opened"], o["resolved"]) if o else _share(0, 0),
        first_contact_resolution=_share(o["opened"], o["first_contact"]) if o else _share(0, 0),
        reopened=_share(r["n"], r["reopened"]) if r else _share(0, 0),
        csat_satisfied=_share(g["csat_n"], g["csat_satisfied"]) if g else _share(0, 0),
        nps=nps_n,
        nps_score=None
        if not nps_n
        else round(100.0 * (g["promoters"] - g["detractors"]) / nps_n, 2),
    )


# ---------------------------------------------------------------- the surge check

# Tickets opened per category, per topic, and per topic within each category (`within`,
# a category's parts): the last 24 h, the 24 h before, and the same 24 h a week earlier,
# with the newest of the last 24 h as examples.
_OPENINGS = """
    WITH recent AS (
        SELECT ticket_id, category, topic, opened_at FROM tickets
        WHERE opened_at >= $1::timestamptz - interval '8 days' AND opened_at < $1::timestamptz
    )
    SELECT dimension, value, within,
        count(*) FILTER (WHERE opened_at >= $1::timestamptz - interval '24 hours') AS last_24h,
        count(*) FILTER (
            WHERE opened_at >= $1::timestamptz - interval '48 hours' AND opened_at < $1::timestamptz - interval '24 hours'
        ) AS day_before,
        count(*) FILTER (
            WHERE opened_at >= $1::timestamptz - interval '8 days' AND opened_at < $1::timestamptz - interval '7 days'
        ) AS week_before,
        (array_agg(ticket_id ORDER BY opened_at DESC)
            FILTER (WHERE opened_at >= $1::timestamptz - interval '24 hours'))[1:$2] AS sample
    FROM (
        SELECT ticket_id, opened_at, 'category' AS dimension, category AS value,
            NULL::text AS within FROM recent
        UNION ALL
        SELECT ticket_id, opened_at, 'topic', topic, NULL FROM recent
        UNION ALL
        SELECT ticket_id, opened_at, 'topic', topic, category FROM recent
        WHERE category IS NOT NULL
    ) by_dimension
    WHERE value IS NOT NULL
    GROUP BY dimension, value, within
    ORDER BY dimension, value, within NULLS FIRST
"""


class SurgeCounter:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    @activity.defn(name=COUNT_OPENINGS)
    async def count_openings(self, request: OpeningsRequest) -> list[Openings]:
        rows = await self._pool.fetch(_OPENINGS, datetime.now(UTC), request.sample)
        counted = [
            Openings(
                dimension=row["dimension"],
                value=row["value"],
                last_24h=row["last_24h"],
                day_before=row["day_before"],
                week_before=row["week_before"],
                sample=list(row["sample"] or []),
            )
            for row in rows
        ]
        categories = {
            o.value: o for o, row in zip(counted, rows, strict=True) if o.dimension == "category"
        }
        for openings, row in zip(counted, rows, strict=True):
            if row["within"] is not None and row["within"] in categories:
                categories[row["within"]].parts.append(openings.model_copy(update={"sample": []}))
        return [o for o, row in zip(counted, rows, strict=True) if row["within"] is None]
