"""Signed partner callbacks: HMAC-SHA256 over `timestamp.body`, fresh, never twice."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from activities.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, signed_headers
from api.signatures import verify
from tests.api.conftest import PARTNER_SECRETS, Stack, unknown_ticket
from tests.waiting import eventually

URL = "/v1/partners/sf-express/callbacks"


def payload(ticket_id: str, **fields: Any) -> bytes:
    body = {"ticket_id": ticket_id, "callback_id": f"cb-{uuid.uuid4()}", "answer": "已找到包裹"}
    body.update(fields)
    return json.dumps(body, ensure_ascii=False).encode()


def headers(
    stack: Stack, body: bytes, partner: str = "sf-express", **overrides: Any
) -> dict[str, str]:
    signed = signed_headers(PARTNER_SECRETS[partner], body, overrides.pop("timestamp", None))
    return {
        **stack.auth(f"partner:{partner}"),
        "Content-Type": "application/json",
        **signed,
        **overrides,
    }


async def engaged_ticket(stack: Stack, partner: str = "sf-express") -> str:
    tid: str = (await stack.open(subject="包裹丢失", description="订单显示已签收但没收到"))[
        "ticket_id"
    ]
    expected_by = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    engaged = await stack.act(
        tid,
        "partner-engagements",
        {"partner": partner, "problem": "包裹丢失", "expected_by": expected_by},
    )
    assert engaged.status_code == 200, engaged.text
    return tid


async def test_a_signed_callback_reaches_the_ticket_once(stack: Stack) -> None:
    tid = await engaged_ticket(stack)
    body = payload(tid)
    sent = headers(stack, body)
    accepted = await stack.http.post(URL, content=body, headers=sent)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json() == {"ticket_id": tid, "accepted": True}

    view = await eventually(
        lambda: stack.services.tickets.view(tid), lambda v: v.status != "waiting_on_partner"
    )
    assert view.status == "in_progress"
    await stack.settled(tid)
    assert "partner_answered" in await stack.stored_events(tid)

    replay = await stack.http.post(URL, content=body, headers=sent)
    assert replay.status_code == 409
    assert replay.json()["code"] == "replayed"


async def test_bad_signatures_are_refused(stack: Stack) -> None:
    tid = await engaged_ticket(stack)
    body = payload(tid)
    now = int(time.time())
    cases = {
        "wrong secret": {
            SIGNATURE_HEADER: sign("not-the-secret", now, body),
            TIMESTAMP_HEADER: str(now),
        },
        "other body": {
            SIGNATURE_HEADER: sign(PARTNER_SECRETS["sf-express"], now, b"{}"),
            TIMESTAMP_HEADER: str(now),
        },
        "stale": headers(stack, body, timestamp=now - 301),
        # Well past the 300 s tolerance: the cases before it take real time to send.
        "from the future": headers(stack, body, timestamp=now + 900),
        "not hex": {SIGNATURE_HEADER: "sha256=zz", TIMESTAMP_HEADER: str(now)},
        "no timestamp": {SIGNATURE_HEADER: sign(PARTNER_SECRETS["sf-express"], now, body)},
        "no signature": {TIMESTAMP_HEADER: str(now)},
    }
    for name, sent in cases.items():
        response = await stack.http.post(
            URL, content=body, headers={**stack.auth("partner:sf-express"), **sent}
        )
        assert response.status_code == 401, (name, response.text)
        assert response.json()["code"] == "bad_signature", name
    # Refusals consumed nothing: the genuine request still goes through.
    assert (
        await stack.http.post(URL, content=body, headers=headers(stack, body))
    ).status_code == 202


async def test_a_partner_answers_only_its_own_engagements(stack: Stack) -> None:
    tid = await engaged_ticket(stack, partner="sf-express")
    body = payload(tid)
    dhl = await stack.http.post(
        "/v1/partners/dhl/callbacks", content=body, headers=headers(stack, body, partner="dhl")
    )
    assert dhl.status_code == 403
    assert "no engagement" in dhl.json()["detail"]

    final = await stack.http.post(URL, content=body, headers=headers(stack, body))
    assert final.status_code == 202
    await eventually(
        lambda: stack.services.tickets.state(tid),
        lambda s: s.partners["sf-express"].answered_at is not None,
    )
    late = payload(tid)
    again = await stack.http.post(URL, content=late, headers=headers(stack, late))
    assert again.status_code == 409
    assert again.json()["code"] == "already_answered"


async def test_signed_but_malformed_or_unknown(stack: Stack) -> None:
    broken = b'{"ticket_id": 1}'
    response = await stack.http.post(URL, content=broken, headers=headers(stack, broken))
    assert response.status_code == 422
    unknown = payload(unknown_ticket())
    response = await stack.http.post(URL, content=unknown, headers=headers(stack, unknown))
    assert response.status_code == 404


def test_verify_accepts_the_documented_forms() -> None:
    body, secret, now = b'{"a":1}', "s", 1_800_000_000
    digest = sign(secret, now, body)
    assert digest.startswith("sha256=")
    tolerance = timedelta(minutes=5)
    assert verify(secret, str(now), digest, body, tolerance, now=now + 299) == digest[7:]
    assert verify(secret, str(now), digest[7:].upper(), body, tolerance, now=now) == digest[7:]
