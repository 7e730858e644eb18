"""A local receiver for every delivery: what `make dev` points the outbox relay at.

It stands in for the company's SMS/push/mail gateways and department systems: it checks
each delivery's signature (activities.signing), keeps one copy per `Idempotency-Key`,
and prints one line per message, so a newcomer running `make demo` watches the messages
arrive in the customer's language. The tests serve it too, as a real HTTP endpoint.

    POST /deliveries            a delivery (the relay's webhook)
    GET  /deliveries            what arrived, newest last (JSON)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from fastapi import FastAPI, Header, Request, Response
from pydantic import BaseModel

from activities.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, check_signature
from api.server import serve_app

log = structlog.get_logger(__name__)

PATH = "/deliveries"


class Received(BaseModel):
    id: str
    ticket_id: str
    kind: str
    destination: str
    locale: str | None
    text: str
    received_at: datetime
    copies: int = 1


@dataclass
class Inbox:
    """What arrived, by idempotency key. `down` makes the receiver answer 503 (tests)."""

    secret: str
    tolerance: timedelta = timedelta(minutes=5)
    received: dict[str, Received] = field(default_factory=dict)
    down: bool = False
    echo: bool = False
    # Tests: requests come in, and wait for `hold` (a destination that is slow to answer).
    requests: int = 0
    hold: asyncio.Event | None = None

    def of(self, ticket_id: str) -> list[Received]:
        return [r for r in self.received.values() if r.ticket_id == ticket_id]


def receiver_app(inbox: Inbox) -> FastAPI:
    app = FastAPI(title="ticketflow dev receiver", docs_url=None, redoc_url=None)

    @app.post(PATH, status_code=202)
    async def deliver(
        request: Request,
        response: Response,
        idempotency_key: str = Header(alias="Idempotency-Key"),
        timestamp: str | None = Header(default=None, alias=TIMESTAMP_HEADER),
        signature: str | None = Header(default=None, alias=SIGNATURE_HEADER),
    ) -> dict[str, Any]:
        inbox.requests += 1
        if inbox.hold is not None:
            await inbox.hold.wait()
        if inbox.down:
            response.status_code = 503
            return {"accepted": False, "reason": "down"}
        body = await request.body()
        try:
            check_signature(inbox.secret, timestamp, signature, body, inbox.tolerance)
        except SignatureError as error:
            response.status_code = 401
            return {"accepted": False, "reason": str(error)}
        seen = inbox.received.get(idempotency_key)
        if seen is not None:
            seen.copies += 1  # a redelivery: acknowledged, not kept twice
            return {"accepted": True, "duplicate": True}
        delivery = await request.json()
        received = Received(
            id=idempotency_key,
            ticket_id=delivery["ticket_id"],
            kind=delivery["kind"],
            destination=delivery["destination"],
            locale=delivery.get("locale"),
            text=delivery["text"],
            received_at=datetime.now(UTC),
        )
        inbox.received[idempotency_key] = received
        if inbox.echo:
            # The dev stack's console: one line a delivery, in the language it was sent in.
            print(f"  → {received.destination:<24} {received.kind:<34} {received.text}", flush=True)
        return {"accepted": True}

    @app.get(PATH)
    async def arrived() -> list[Received]:
        return sorted(inbox.received.values(), key=lambda r: r.received_at)

    return app


async def serve_receiver(inbox: Inbox, host: str, port: int, stop: asyncio.Event) -> None:
    # The API's way to serve: uvicorn's own server would capture Ctrl-C and raise it again
    # on the way out, turning the stack's clean stop into a KeyboardInterrupt (exit 130).
    await serve_app(receiver_app(inbox), host, port, stop)
