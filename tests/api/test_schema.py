"""The OpenAPI document, and a property-based run over it: whatever schemathesis makes of
the schema (valid requests and deliberately invalid ones), with any role's key, on real
and unknown tickets, the API never answers 5xx.

Hypothesis runs in a thread of its own and hands each request to the test's event loop,
where the application, its Temporal client and its PostgreSQL pool live.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from activities.signing import signed_headers
from stores.policy_store import publish as publish_policy
from tests.api.conftest import PARTNER_SECRETS, ROLES, Stack

EXAMPLES = 150
# Counted from the first example; the schema now has a body model per action, and
# generating their bodies takes most of it on two busy cores.
BUDGET_S = 45.0


async def test_openapi_document_and_docs_need_no_key(stack: Stack) -> None:
    document = await stack.http.get("/openapi.json")
    assert document.status_code == 200
    paths = document.json()["paths"]
    assert "/v1/tickets/{ticket_id}/resolution" in paths
    assert "/v1/partners/{partner}/callbacks" in paths
    schemes = document.json()["components"]["securitySchemes"]
    assert {"ApiKey", "Bearer"} <= set(schemes)
    docs = await stack.http.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    assert (await stack.http.get("/healthz")).json() == {"status": "ok", "checks": {}}
    ready = await stack.http.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert (checks["temporal"], checks["postgres"], checks["schema"]) == ("ok", "ok", "ok")
    assert checks["policy"].startswith("ok")
    # A worker that runs another policy than the API's: shown, and named, but still ready
    # (a policy rollout passes through this state).
    other = stack.settings.policy.model_copy(update={"time_scale": 60.0})
    await publish_policy(stack.pool, stack.settings.task_queue, other)
    try:
        ready = await stack.http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["policy"].startswith(
            "differs from the workers' in time_scale"
        )
    finally:
        await publish_policy(stack.pool, stack.settings.task_queue, stack.settings.policy)


async def test_no_request_the_schema_allows_or_forbids_gets_a_5xx(stack: Stack) -> None:
    tickets = [(await stack.open())["ticket_id"] for _ in range(3)]
    schema = schemathesis.openapi.from_dict(stack.app.openapi())
    cases = st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE)
    )
    loop = asyncio.get_running_loop()
    failures: list[str] = []
    sent = {"count": 0}
    # The budget counts from the first example: building the strategies for the whole
    # schema (one body model per action, one payload model per event) is not sending.
    started: list[float] = []

    async def send(kwargs: dict[str, Any]) -> httpx.Response:
        return await stack.http.request(**kwargs)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=cases,
        # Mostly the roles that may act, so most requests get past the role check.
        role=st.sampled_from(["agent", "operator", "agent", "operator", *ROLES]),
        real=st.sampled_from([None, *tickets]),
        keyed=st.sampled_from([True] * 9 + [False]),
    )
    def property_(case: schemathesis.Case[Any], role: str, real: str | None, keyed: bool) -> None:
        started[:] = started or [time.monotonic()]
        if time.monotonic() - started[0] > BUDGET_S:
            return  # keep the suite's time bounded; the examples so far stand
        if real is not None and "ticket_id" in (case.path_parameters or {}):
            case.path_parameters = {**(case.path_parameters or {}), "ticket_id": real}
        # One in ten keeps whatever credentials schemathesis made up.
        kwargs = _as_httpx(case, stack.keys[role] if keyed else None, role)
        try:
            response = asyncio.run_coroutine_threadsafe(send(kwargs), loop).result(timeout=30)
        except (httpx.LocalProtocolError, UnicodeEncodeError, ValueError):
            return  # httpx would not send it (a header no server could receive)
        sent["count"] += 1
        if response.status_code >= 500:
            failures.append(
                f"{kwargs['method']} {kwargs['url']} -> {response.status_code}: {response.text[:300]}"
            )

    await asyncio.to_thread(property_)
    assert not failures, "\n".join(failures[:10])
    # Enough examples to mean something; some routes embed text (suggestions) or build a
    # report, and a cold fresh clone runs fewer in the budget than a warm one.
    assert sent["count"] >= 30


def _as_httpx(case: schemathesis.Case[Any], key: str | None, role: str) -> dict[str, Any]:
    raw = case.as_transport_kwargs(base_url="http://ticketflow.test")
    headers = {k: v for k, v in raw.get("headers", {}).items() if isinstance(v, str)}
    if key is not None:
        headers = {
            k: v for k, v in headers.items() if k.lower() not in ("authorization", "x-api-key")
        }
        headers["Authorization"] = f"Bearer {key}"
    kwargs: dict[str, Any] = {
        "method": raw["method"],
        "url": raw["url"],
        "params": raw.get("params") or None,
    }
    if "json" in raw:
        content = json.dumps(raw["json"]).encode()
        headers.setdefault("Content-Type", "application/json")
    elif "data" in raw and isinstance(raw["data"], bytes | str):
        content = raw["data"].encode() if isinstance(raw["data"], str) else raw["data"]
    else:
        content = None
    partner = role.partition(":")[2]
    if "/callbacks" in raw["url"] and role.startswith("partner:") and content is not None:
        # A correctly signed body, so the run reaches past the signature check.
        headers.update(signed_headers(PARTNER_SECRETS[partner], content))
    if content is not None:
        kwargs["content"] = content
    kwargs["headers"] = headers
    return kwargs
