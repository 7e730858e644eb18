"""The weekly review's report: the week's indicators against the week before, the sample
and why each ticket was chosen, the 5-Why chains, the follow-ups and where each stands,
and the root-cause tags. One model (`ReviewReport`), served as JSON, as Markdown (a
Jinja2 template, `api/templates/review.md.j2`) and as a page (`api/pages/review.html`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined
from pydantic import BaseModel

from activities.database import Pool
from activities.indicators import ServiceHealth, Share, service_health
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
    this_week: ServiceHealth
    previous_week: ServiceHealth


def _percent(share: Share) -> str:
    return "–" if share.percent is None else f"{share.percent:.1f} % of {share.n}"


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} s"


def indicator_rows(now: ServiceHealth, before: ServiceHealth) -> list[IndicatorRow]:
    """The indicators SPEC §5 names, this week and the week before, side by side."""
    rows: list[IndicatorRow] = []
    if now.groups and before.groups:
        a, b = now.groups[0], before.groups[0]
        pairs = [
            ("tickets opened", str(a.opened), str(b.opened)),
            (
                "first response, live (median)",
                _seconds(a.first_response.live.median_seconds),
                _seconds(b.first_response.live.median_seconds),
            ),
            (
                "first response within target, live",
                _percent(a.first_response.live_within_target),
                _percent(b.first_response.live_within_target),
            ),
            (
                "first response within target, async",
                _percent(a.first_response.async_within_target),
                _percent(b.first_response.async_within_target),
            ),
            ("resolved", _percent(a.resolved), _percent(b.resolved)),
            (
                "first-contact resolution",
                _percent(a.first_contact_resolution),
                _percent(b.first_contact_resolution),
            ),
            ("reopened", _percent(a.reopened), _percent(b.reopened)),
            ("transferred", _percent(a.transferred), _percent(b.transferred)),
            ("CSAT satisfied", _percent(a.csat_satisfied), _percent(b.csat_satisfied)),
            (
                "NPS",
                "–" if a.nps_score is None else f"{a.nps_score:+.0f} ({a.nps} ratings)",
                "–" if b.nps_score is None else f"{b.nps_score:+.0f} ({b.nps} ratings)",
            ),
        ]
        rows += [IndicatorRow(name=n, this_week=x, previous_week=y) for n, x, y in pairs]
    earlier = {s.priority: s.met for s in before.sla}
    for attained in now.sla:
        previous = earlier.get(attained.priority)
        rows.append(
            IndicatorRow(
                name=f"SLA met, {attained.priority}",
                this_week=_percent(attained.met),
                previous_week="–" if previous is None else _percent(previous),
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
        this_week=now,
        previous_week=before,
    )


_ENV = Environment(
    loader=PackageLoader("api", "templates"),
    undefined=StrictUndefined,
    autoescape=False,  # Markdown, not HTML: the page renders the JSON itself
    keep_trailing_newline=True,
)


def markdown(report: ReviewReport) -> str:
    zone = ZoneInfo(report.time_zone)
    env = _ENV.overlay()
    env.filters["when"] = lambda at: at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    env.filters["day"] = lambda at: at.astimezone(zone).strftime("%a %Y-%m-%d")
    env.filters["cell"] = lambda text: str(text).replace("|", "\\|").replace("\n", " ")
    template = env.get_template("review.md.j2")
    # period_end is the next Monday 00:00: the last day reviewed is the Sunday before it.
    shown = report.model_copy(update={"period_end": report.period_end - timedelta(seconds=1)})
    return template.render(r=shown)
