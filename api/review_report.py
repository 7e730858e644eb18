"""The weekly review's report: the week's indicators against the week before, the sample
and why each ticket was chosen, the 5-Why chains, the follow-ups and where each stands,
and the root-cause tags. One model (`ReviewReport`), served as JSON, as Markdown (a
Jinja2 template, `api/templates/review.md.j2`) and as a page (`api/pages/review.html`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined
from pydantic import BaseModel

from activities.database import Pool
from activities.indicators import Group, ServiceHealth, Share, service_health
from workflows.policy import ServicePolicy
from workflows.review_contracts import Analysis, FollowUp, ReviewState, SampledTicket
from workflows.review_rules import review_zone, waiting_for


class IndicatorRow(BaseModel):
    name: str
    this_week: str
    previous_week: str


class ReviewReport(BaseModel):
    week: str
    period_start: datetime
    period_end: datetime
    time_zone: str
    complete: bool
    waiting_for: str
    indicators: list[IndicatorRow]
    candidates: int
    sample: list[SampledTicket]
    analyses: list[Analysis]
    follow_ups: list[FollowUp]
    root_cause_counts: dict[str, int]
    surged_categories: list[str]
    delivery_failures: list[str]
    this_week: ServiceHealth
    previous_week: ServiceHealth


def _percent(share: Share) -> str:
    return "–" if share.percent is None else f"{share.percent:.1f} % of {share.n}"


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} s"


def _nps(group: Group | None) -> str:
    if group is None or group.nps_score is None:
        return "–"
    return f"{group.nps_score:+.0f} ({group.nps} ratings)"


# Each row: a name, and how to read it off a period's group of all tickets.
_ROWS: list[tuple[str, Callable[[Group], str]]] = [
    ("tickets opened", lambda g: str(g.opened)),
    ("first response, live (median)", lambda g: _seconds(g.first_response.live.median_seconds)),
    ("first response within target, live", lambda g: _percent(g.first_response.live_within_target)),
    (
        "first response within target, async",
        lambda g: _percent(g.first_response.async_within_target),
    ),
    ("resolved", lambda g: _percent(g.resolved)),
    ("first-contact resolution", lambda g: _percent(g.first_contact_resolution)),
    ("reopened", lambda g: _percent(g.reopened)),
    ("transferred", lambda g: _percent(g.transferred)),
    ("CSAT satisfied", lambda g: _percent(g.csat_satisfied)),
    ("NPS", _nps),
]


def indicator_rows(now: ServiceHealth, before: ServiceHealth) -> list[IndicatorRow]:
    """The indicators SPEC §5 names, this week and the week before, side by side (a week
    without tickets shows "–")."""
    a = now.groups[0] if now.groups else None
    b = before.groups[0] if before.groups else None
    rows = [
        IndicatorRow(
            name=name,
            this_week="–" if a is None else read(a),
            previous_week="–" if b is None else read(b),
        )
        for name, read in _ROWS
    ]
    earlier = {s.priority: s.met for s in before.sla}
    later = {s.priority: s.met for s in now.sla}
    for priority in sorted(set(earlier) | set(later)):
        rows.append(
            IndicatorRow(
                name=f"SLA met, {priority}",
                this_week=_percent(later[priority]) if priority in later else "–",
                previous_week=_percent(earlier[priority]) if priority in earlier else "–",
            )
        )
    return rows


async def build_report(pool: Pool, policy: ServicePolicy, state: ReviewState) -> ReviewReport:
    week = state.period_end - state.period_start
    now = await service_health(pool, policy, state.period_start, state.period_end)
    before = await service_health(pool, policy, state.period_start - week, state.period_start)
    sampled = [t.ticket_id for t in state.sample]
    return ReviewReport(
        week=state.week,
        period_start=state.period_start,
        period_end=state.period_end,
        time_zone=str(review_zone(policy)),
        complete=state.completed_at is not None,
        waiting_for=waiting_for(state),
        indicators=indicator_rows(now, before),
        candidates=state.candidates,
        sample=state.sample,
        analyses=[state.analyses[t] for t in sampled if t in state.analyses],
        follow_ups=state.follow_ups,
        root_cause_counts=state.root_cause_counts,
        surged_categories=state.surged_categories,
        delivery_failures=[failure.line() for failure in state.delivery_failures],
        this_week=now,
        previous_week=before,
    )


_ENV = Environment(
    loader=PackageLoader("api", "templates"),
    undefined=StrictUndefined,
    autoescape=False,  # Markdown, not HTML: the page renders the JSON itself
    keep_trailing_newline=True,
)


_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")


def _markdown_text(text: object) -> str:
    """People's words as plain Markdown text: one line, Markdown's punctuation escaped,
    and no raw HTML (a wiki that renders HTML gets entities, not markup)."""
    line = " ".join(str(text).split())
    line = line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SPECIAL.sub(r"\\\1", line)


def markdown(report: ReviewReport) -> str:
    zone = ZoneInfo(report.time_zone)
    env = _ENV.overlay()
    env.filters["when"] = lambda at: at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    env.filters["day"] = lambda at: at.astimezone(zone).strftime("%a %Y-%m-%d")
    env.filters["md"] = _markdown_text
    template = env.get_template("review.md.j2")
    # period_end is the next Monday 00:00: the last day reviewed is the Sunday before it.
    shown = report.model_copy(update={"period_end": report.period_end - timedelta(seconds=1)})
    return template.render(r=shown)
