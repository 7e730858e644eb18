"""The weekly review over HTTP, for review leads (the `manager` role, and operators):
start a week's review, read its report (JSON, Markdown; the page is in `api.routes.pages`),
and one route per lead action of `workflows.review_contracts.REVIEW_ACTIONS`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from api.access import Caller, Rule
from api.client import ActionUnconfirmed, new_action_id
from api.deps import ACTION_ID_HEADER, Svc, require, summary_of
from api.errors import COMMON_RESPONSES, ApiError, translate
from api.review_report import ReviewReport, build_report, markdown
from api.schemas import REVIEW_REQUESTS, ActionRequest, to_action
from workflows.review_contracts import (
    REVIEW_ACTIONS,
    ReviewAction,
    ReviewView,
    check_week,
    review_action_name,
    review_id,
)
from workflows.review_rules import review_zone, week_before, week_of, week_period

reviews = APIRouter(tags=["weekly review"], responses=COMMON_RESPONSES)

WeekPath = Annotated[
    str, Path(pattern=r"^\d{4}-W\d{2}$", examples=["2026-W48"], description="ISO week")
]
Lead = Annotated[Caller, Depends(require(Rule.REVIEW))]


def _week(value: str) -> str:
    try:
        return check_week(value)
    except ValueError as error:
        raise ApiError(422, "invalid_week", str(error)) from None


class StartReview(BaseModel):
    week: str | None = Field(
        default=None,
        pattern=r"^\d{4}-W\d{2}$",
        description="ISO week to review; default the week before this one (policy's zone), "
        "or this one with `so_far`.",
    )
    so_far: bool = Field(
        default=False,
        description="Review a week that is not over yet, as far as it went (only where "
        "the API allows it: `make dev` does, to try the review after `make demo`).",
    )


class ReviewStarted(BaseModel):
    review_id: str
    week: str
    created: bool


class ReviewListed(BaseModel):
    week: str
    complete: bool


@reviews.post("/v1/reviews", status_code=201)
async def start_review(
    body: StartReview, svc: Svc, _lead: Lead, response: Response
) -> ReviewStarted:
    """Start a week's review (the Schedule does it every Monday). Started again, it is the
    same review: 200 with `created: false`."""
    now = datetime.now(UTC)
    zone = review_zone(svc.policy)
    default = week_of(now, zone) if body.so_far else week_before(now, zone)
    week = _week(body.week or default)
    if week_period(week, zone)[1] > now and not (body.so_far and svc.settings.open_week_reviews):
        # A week not over yet would be sampled half, and its Monday review refused.
        if body.so_far:
            raise ApiError(
                422,
                "open_week_reviews_off",
                f"{week} is not over yet, and this API reviews only weeks that are "
                "(TICKETFLOW_API__OPEN_WEEK_REVIEWS=true allows it, as `make dev` does)",
            )
        hint = "; `so_far` reviews it as far as it went" if svc.settings.open_week_reviews else ""
        raise ApiError(422, "week_not_over", f"{week} is not over yet; review it once it is{hint}")
    created = await svc.call(svc.reviews.start(week))
    if not created:
        response.status_code = 200
    return ReviewStarted(review_id=review_id(week), week=week, created=created)


@reviews.get("/v1/reviews")
async def list_reviews(svc: Svc, _lead: Lead) -> list[ReviewListed]:
    """The reviews recorded, newest week first."""
    weeks = await svc.call(svc.review_store.weeks())
    return [ReviewListed(week=week, complete=complete) for week, complete in weeks]


async def _report(svc: Svc, week: str) -> ReviewReport:
    state = await svc.call(svc.review_store.review(_week(week)))
    if state is None:
        raise ApiError(
            404,
            "review_not_found",
            f"no report of {week} yet: POST /v1/reviews starts the review, which then "
            "takes its sample (a moment)",
        )
    return await svc.call(build_report(svc.pool, svc.policy, state))


@reviews.get("/v1/reviews/{week}")
async def show_review(week: WeekPath, svc: Svc, _lead: Lead) -> ReviewReport:
    """The week's report: indicators against the week before, the sample and why, the
    5-Why chains, the follow-ups and where each stands, root-cause tag counts."""
    return await _report(svc, week)


@reviews.get(
    "/v1/reviews/{week}/report.md",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/markdown": {}}}},
)
async def review_markdown(week: WeekPath, svc: Svc, _lead: Lead) -> PlainTextResponse:
    """The same report as Markdown, for a wiki or a mail."""
    return PlainTextResponse(
        markdown(await _report(svc, week)), media_type="text/markdown; charset=utf-8"
    )


def _review_error(error: Exception, week: str, action_id: str) -> Exception:
    """Temporal's answers in a review's words (the generic ones speak of tickets)."""
    if isinstance(error, ActionUnconfirmed):
        return ApiError(
            503,
            "review_busy",
            f"the review of {week} did not take the action yet (it may be taking its "
            f"sample); send it again with action_id {action_id}",
            {"Retry-After": "2", ACTION_ID_HEADER: action_id},
        )
    mapped = translate(error)
    if mapped is not None and mapped.code == "ticket_not_found":
        return ApiError(404, "review_not_found", f"no review of {week}; POST /v1/reviews starts it")
    if mapped is not None and mapped.code == "ticket_closed":
        return ApiError(409, "review_complete", f"the review of {week} is complete")
    return error


def _review_route(action: type[ReviewAction]) -> Callable[..., Awaitable[ReviewView]]:
    async def act(
        week: WeekPath, body: ActionRequest, response: Response, svc: Svc, caller: Lead
    ) -> ReviewView:
        action_id = body.action_id or new_action_id()
        sent = to_action(action, body, caller.actor(body.actor_id), action_id)
        response.headers[ACTION_ID_HEADER] = action_id
        try:
            return await svc.call(svc.reviews.act(_week(week), sent))
        except Exception as error:
            raise _review_error(error, week, action_id) from error

    act.__annotations__["body"] = REVIEW_REQUESTS[action]
    return act


for _action in REVIEW_ACTIONS:
    reviews.add_api_route(
        f"/v1/reviews/{{week}}/{_action.route}",
        _review_route(_action),
        methods=["POST"],
        name=f"review_{review_action_name(_action)}",
        summary=summary_of(_action),
        description=f"The `{review_action_name(_action)}` update of the week's review.",
    )
