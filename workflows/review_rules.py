"""Pure rules of the weekly review: weeks, the stratified sample, whether a lead's action
fits the review now, and when each follow-up is chased next."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from workflows.policy import ServicePolicy
from workflows.primitives import Rule, rule_for
from workflows.review_contracts import (
    AddWhy,
    Candidates,
    CloseFollowUp,
    Conclude,
    FollowUp,
    FollowUpStatus,
    RecordProblem,
    ReviewAction,
    ReviewState,
    SampledTicket,
    SampleReason,
    check_week,
)

# Always taken first, all of them up to the sample size: the issue's "every breached and
# every reopened ticket". The other strata share what is left, in turn.
MUST = (SampleReason.SLA_BREACHED, SampleReason.REOPENED)
IN_TURN = (
    SampleReason.LOW_SATISFACTION,
    SampleReason.ESCALATED,
    SampleReason.FREQUENT_ROOT_CAUSE,
    SampleReason.SURGED_CATEGORY,
)


def review_zone(policy: ServicePolicy) -> ZoneInfo:
    return ZoneInfo(policy.review.time_zone or policy.time_zone)


def week_of(instant: datetime, zone: ZoneInfo) -> str:
    year, week, _ = instant.astimezone(zone).isocalendar()
    return f"{year}-W{week:02d}"


def week_before(instant: datetime, zone: ZoneInfo) -> str:
    """The ISO week before the one `instant` falls in: what a Monday review looks back on."""
    return week_of(instant.astimezone(zone) - timedelta(days=7), zone)


def week_period(week: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Monday 00:00 to the next Monday 00:00, local, as UTC instants."""
    year, number = check_week(week).split("-W")
    monday = date.fromisocalendar(int(year), int(number), 1)
    start = datetime.combine(monday, time(0), tzinfo=zone)
    end = datetime.combine(monday + timedelta(days=7), time(0), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def stratified_sample(candidates: Candidates, size: int, seed: str) -> list[SampledTicket]:
    """Every breached and reopened ticket (up to `size`), then the other reasons in turn,
    each stratum in an order drawn from `seed` (the week): the same week, the same sample.
    Each ticket carries every reason it was a candidate for."""
    rng = random.Random(seed)
    strata = {
        reason: rng.sample(sorted(set(ids)), len(set(ids)))
        for reason, ids in candidates.by_reason.items()
    }
    chosen: list[str] = []

    def take(ticket_id: str) -> None:
        if ticket_id not in chosen and len(chosen) < size:
            chosen.append(ticket_id)

    must = sorted({t for reason in MUST for t in strata.get(reason, [])})
    for ticket_id in rng.sample(must, len(must)):
        take(ticket_id)
    queues = [list(strata.get(reason, [])) for reason in IN_TURN]
    while len(chosen) < size and any(queues):
        for queue in queues:
            while queue and queue[0] in chosen:
                queue.pop(0)
            if queue:
                take(queue.pop(0))
    return [
        SampledTicket(
            ticket_id=ticket_id,
            reasons=[r for r in SampleReason if ticket_id in candidates.by_reason.get(r, [])],
            tag=candidates.tags.get(ticket_id),
            root_cause=candidates.root_causes.get(ticket_id),
        )
        for ticket_id in chosen
    ]


# ---------------------------------------------------------------- the leads' actions


def rejection(
    state: ReviewState, policy: ServicePolicy, action: ReviewAction, now: datetime
) -> str | None:
    """Why this action does not fit the review now, in words a lead understands."""
    if state.completed_at is not None:
        return f"the review of {state.week} is complete"
    check = _RULES.get(type(action))
    return check(state, policy, action, now) if check else None


def _analysis_open(state: ReviewState, ticket_id: str) -> str | None:
    if ticket_id not in {t.ticket_id for t in state.sample}:
        return f"ticket {ticket_id} is not in the review's sample"
    analysis = state.analyses.get(ticket_id)
    if analysis is not None and analysis.concluded is not None:
        return f"the analysis of {ticket_id} is concluded"
    return None


def _reject_problem(
    state: ReviewState, policy: ServicePolicy, action: RecordProblem, now: datetime
) -> str | None:
    return _analysis_open(state, action.ticket_id)


def _reject_why(
    state: ReviewState, policy: ServicePolicy, action: AddWhy | Conclude, now: datetime
) -> str | None:
    reason = _analysis_open(state, action.ticket_id)
    if reason is not None:
        return reason
    analysis = state.analyses.get(action.ticket_id)
    if analysis is None or analysis.surface_problem is None:
        return "record the surface problem first"
    return None


def _reject_conclusion(
    state: ReviewState, policy: ServicePolicy, action: Conclude, now: datetime
) -> str | None:
    reason = _reject_why(state, policy, action, now)
    if reason is not None:
        return reason
    whys = len(state.analyses[action.ticket_id].whys)
    needed = policy.review.min_whys
    if whys < needed:
        return f"a 5-Why needs at least {needed} whys before its root cause; this one has {whys}"
    if len(action.follow_ups) > policy.review.follow_ups_per_analysis:
        return f"at most {policy.review.follow_ups_per_analysis} follow-up actions per analysis"
    latest = now + policy.review.longest_follow_up
    for follow_up in action.follow_ups:
        if follow_up.due.tzinfo is None:
            return "a follow-up's due date needs its UTC offset"
        if not now < follow_up.due <= latest:
            return (
                f"follow-up {follow_up.description!r}: due dates fall after now and at most "
                f"{policy.review.longest_follow_up.days} days ahead"
            )
    return None


def _reject_close(
    state: ReviewState, policy: ServicePolicy, action: CloseFollowUp, now: datetime
) -> str | None:
    if not 1 <= action.number <= len(state.follow_ups):
        return f"no follow-up {action.number} in the review of {state.week}"
    follow_up = state.follow_ups[action.number - 1]
    if follow_up.status is not FollowUpStatus.OPEN:
        return f"follow-up {action.number} is {follow_up.status.value} already"
    return None


_RULES: dict[type[ReviewAction], Rule[ReviewState, ServicePolicy]] = {
    kind: rule
    for kind, rule in (
        rule_for(RecordProblem, _reject_problem),
        rule_for(AddWhy, _reject_why),
        rule_for(Conclude, _reject_conclusion),
        rule_for(CloseFollowUp, _reject_close),
    )
}


# ---------------------------------------------------------------- follow-ups and progress


Chase = Literal["reminder", "due", "escalation"]


def next_chase(follow_up: FollowUp, policy: ServicePolicy) -> tuple[datetime, Chase] | None:
    """When an open follow-up is chased next, and how: a reminder before the due date (if
    it was set early enough for one), a reminder at it, then after the grace period the
    escalation. `stage` counts what was sent."""
    if follow_up.status is not FollowUpStatus.OPEN:
        return None
    early = follow_up.due - policy.review.remind_before
    if follow_up.stage == 0 and follow_up.created_at < early < follow_up.due:
        return early, "reminder"
    if follow_up.stage <= 1:
        return follow_up.due, "due"
    if follow_up.stage == 2:
        return follow_up.due + policy.review.grace, "escalation"
    return None


def is_complete(state: ReviewState) -> bool:
    analysed = all(
        (a := state.analyses.get(t.ticket_id)) is not None and a.concluded is not None
        for t in state.sample
    )
    return analysed and all(f.status is not FollowUpStatus.OPEN for f in state.follow_ups)


def waiting_for(state: ReviewState) -> str:
    if state.completed_at is not None:
        return "nothing: complete"
    open_analyses = [
        t.ticket_id
        for t in state.sample
        if (a := state.analyses.get(t.ticket_id)) is None or a.concluded is None
    ]
    open_follow_ups = [f.number for f in state.follow_ups if f.status is FollowUpStatus.OPEN]
    parts = []
    if open_analyses:
        parts.append(f"{len(open_analyses)} analyses")
    if open_follow_ups:
        parts.append(f"{len(open_follow_ups)} follow-up actions")
    return ", ".join(parts) or "nothing"
