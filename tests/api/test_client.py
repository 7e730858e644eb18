"""The clients' one way to send an action: what a caller learns when Temporal cannot say
whether the workflow took it. A real server that went away, not a mock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest
from temporalio.testing import WorkflowEnvironment

from api.client import ActionUnconfirmed, ReviewClient, TicketClient
from tests.codec_keys import CONVERTER
from tests.conftest import TEMPORAL_TEST_SERVER
from workflows.contracts import Respond
from workflows.policy import ServicePolicy
from workflows.primitives import Actor
from workflows.review_contracts import AddWhy

ACTOR = Actor(id="lead-1")


async def test_an_action_temporal_cannot_confirm_carries_its_id_for_tickets_and_reviews() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=TEMPORAL_TEST_SERVER, data_converter=CONVERTER
    )
    client = env.client
    await env.shutdown()  # connected once, then gone: the SDK's retries end in UNAVAILABLE
    tickets = TicketClient(client, task_queue="nowhere", policy=ServicePolicy())
    reviews = ReviewClient(client, task_queue="nowhere", policy=ServicePolicy())

    async def unconfirmed(sent: Awaitable[object]) -> str:
        with pytest.raises(ActionUnconfirmed) as caught:
            await sent
        return caught.value.action_id

    ids = await asyncio.gather(
        unconfirmed(
            tickets.act("ticket-gone", Respond(actor=ACTOR, message="在看", action_id="t-1"))
        ),
        unconfirmed(
            reviews.act("2003-W10", AddWhy(actor=ACTOR, ticket_id="T-1", text="?", action_id="r-1"))
        ),
    )
    assert list(ids) == ["t-1", "r-1"]
