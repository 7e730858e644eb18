"""The HTTP API's application: intake from any channel, one route per action, customer
replies, signed partner callbacks, reads from the workflow (live) and the read model
(lists), and everything in `api.routes`, one module per resource.

`create_app(services)` builds the FastAPI application around already-connected services,
so the process (`api.server.serve`) and the tests (httpx's ASGI transport) run the same
application. Failures become answers in `api.errors`, never in a route.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline

from api.deps import Services, known_query
from api.errors import install_error_handlers
from api.middleware import RequestContext
from api.prometheus import HttpMetrics
from api.routes.actions import actions
from api.routes.erasure import erasures
from api.routes.health import health
from api.routes.inbound import inbound
from api.routes.intake import intake
from api.routes.knowledge import knowledge
from api.routes.metrics import metrics
from api.routes.pages import pages
from api.routes.reads import reads
from api.routes.reviews import reviews
from api.workspace.routes import install as install_workspace

DESCRIPTION = """
Customer-service tickets as durable Temporal workflows.

Authenticate with `Authorization: Bearer <key>` (or `X-API-Key: <key>`). Roles: `backend`,
`agent`, `operator`, `manager`, `department:<name>`, `partner:<name>`. Errors share one shape:
`{"code", "detail", "request_id"}`; 503 answers carry `Retry-After`.
"""

# Included, and so matched, in this order.
ROUTERS = (intake, actions, inbound, reads, knowledge, metrics, reviews, erasures, pages, health)


def _operation_id(route: APIRoute) -> str:
    return route.name


def create_app(svc: Services) -> FastAPI:
    # /docs from assets shipped in the package: no CDN (unreachable offline, and unreliable
    # from mainland China).
    app = FastAPIOffline(
        title="ticketflow",
        version="1",
        description=DESCRIPTION,
        generate_unique_id_function=_operation_id,
        dependencies=[Depends(known_query)],
    )
    app.state.services = svc
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    # The agents' workspace at /app (api/workspace/): pages, forms and the live stream.
    install_workspace(app, svc)
    app.state.http_metrics = HttpMetrics()
    app.add_middleware(RequestContext, keys=svc.keys, metrics=app.state.http_metrics)
    return app
