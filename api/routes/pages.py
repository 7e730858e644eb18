"""Pages for people, outside the OpenAPI document: each asks for an API key and reads the
JSON routes with it, drawing everything in the page (nothing loaded from elsewhere)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api.deps import TicketIdPath
from api.routes.reviews import WeekPath

pages = APIRouter()
_PAGES = resources.files("api").joinpath("pages")


@pages.get("/tickets/{ticket_id}/deliveries", include_in_schema=False)
async def deliveries_page(ticket_id: TicketIdPath) -> HTMLResponse:
    """The deliveries of one ticket, for people: the page asks for an API key and reads
    `GET /v1/tickets/{id}/deliveries` with it."""
    return HTMLResponse(_PAGES.joinpath("deliveries.html").read_text("utf-8"))


@pages.get("/dashboard", include_in_schema=False)
async def dashboard_page() -> HTMLResponse:
    """Service health for managers: charts of `GET /v1/metrics`, drawn in the page (SVG),
    nothing loaded from elsewhere. The page asks for a manager's key."""
    return HTMLResponse(_PAGES.joinpath("dashboard.html").read_text("utf-8"))


@pages.get("/reviews/{week}", include_in_schema=False)
async def review_page(week: WeekPath) -> HTMLResponse:
    """The report for people: the page asks for a manager's key and reads
    `GET /v1/reviews/{week}` with it."""
    return HTMLResponse(_PAGES.joinpath("review.html").read_text("utf-8"))
