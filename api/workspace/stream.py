"""The live stream, `GET /app/live`: server-sent events from the hub (`live.py`) to one
open page, and the page's presence on the ticket it shows."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import StreamingResponse

from api.deps import known
from api.workspace.live import Change
from api.workspace.ticket_page import may_watch
from api.workspace.web import AgentDep, Desk, DeskDep

stream = APIRouter(prefix="/app", include_in_schema=False)


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n"


@stream.get("/live")
async def live(
    me: AgentDep,
    found: DeskDep,
    ticket: Annotated[str | None, Query(max_length=64)] = None,
) -> StreamingResponse:
    """Server-sent events: `tickets` (ids that changed, for the page to read again),
    `presence` (who else has this ticket open, and who types), `resync` (read
    everything again). Nothing here polls Temporal."""
    watched = known(ticket) if ticket else None
    if watched is not None:
        await may_watch(found.svc, watched, me.caller)
    settings = found.settings
    connection = uuid.uuid4().hex

    async def stream() -> AsyncIterator[str]:
        async with found.live.subscribe() as subscription:
            if watched is not None:
                await found.presence.join(watched, connection, me.caller.name)
                await found.live.notify_presence(watched)
            try:
                yield "retry: 1000\n\n"
                while True:
                    try:
                        change, ticket_id = await asyncio.wait_for(
                            subscription.queue.get(), settings.live_heartbeat.total_seconds()
                        )
                    except TimeoutError:
                        if watched is not None:
                            await found.presence.touch(watched, connection)
                        yield ": still here\n\n"
                        continue
                    changes = [(change, ticket_id)]
                    # A burst (an action's events, a batch of deliveries) is sent as one.
                    await asyncio.sleep(settings.live_coalesce.total_seconds())
                    while not subscription.queue.empty():
                        changes.append(subscription.queue.get_nowait())
                    kinds = {kind for kind, _ in changes}
                    if Change.CLOSING in kinds:
                        return
                    if Change.RESYNC in kinds:
                        yield _event("resync", {})
                    changed = sorted({tid for kind, tid in changes if kind is Change.TICKET})
                    if changed:
                        yield _event("tickets", changed)
                    if watched is not None and (watched, Change.PRESENCE) in {
                        (tid, kind) for kind, tid in changes
                    } | ({(watched, Change.PRESENCE)} if Change.RESYNC in kinds else set()):
                        viewers = await found.presence.viewers(watched)
                        yield _event(
                            "presence",
                            [
                                # ISO 8601 instants (str() would write a space
                                # for the T, which not every browser's Date reads).
                                {
                                    **v.model_dump(mode="json"),
                                    "me": v.staff_id == me.caller.name,
                                }
                                for v in viewers
                            ],
                        )
            finally:
                if watched is not None:
                    found.later(_leave(found, watched, connection))

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _leave(found: Desk, ticket_id: str, connection: str) -> None:
    await found.presence.leave(ticket_id, connection)
    await found.live.notify_presence(ticket_id)
