"""The learned classifier at intake (issue 12), on the time-skipping server: everyday
wording the keyword rules miss is classified by the model, with its version on the event;
the rules stay where the model is not sure, and an agent always has the last word."""

from __future__ import annotations

from datetime import timedelta

from tests.workflows.conftest import AGENT, Desk, DeskFactory
from workflows.contracts import Classify
from workflows.policy import ServicePolicy
from workflows.vocabulary import Category, Priority, Topic


async def classified(desk: Desk, ticket_id: str) -> list[dict[str, object]]:
    await desk.settled(ticket_id)
    return [dict(r["data"]) for r in await desk.events(ticket_id) if r["type"] == "classified"]


async def test_someone_logged_into_my_account_is_a_security_ticket(desk: Desk) -> None:
    tid = (await desk.open("someone logged into my account", channel="email")).ticket_id
    for _ in range(100):  # the model's answer comes a moment after intake
        found = await classified(desk, tid)
        if found:
            break
        await desk.env.sleep(timedelta(milliseconds=50))
    [event] = found
    assert (event["category"], event["topic"], event["priority"]) == (
        "account_security",
        "login",
        "A",
    )
    assert event["automatic"] is True
    assert str(event["model_version"]).startswith("clf-v1-")
    assert "rules:" in str(event["reason"]) and "category 0.9" in str(event["reason"])
    view = await desk.tickets.view(tid)
    assert view.tag == "安全-登錄-A級"
    # Account security starts risk control, as it does when the rules find it.
    assert "risk_control_started" in await desk.event_types(tid)
    # An agent still decides: their classification stands, and the model never returns.
    await desk.tickets.act(
        tid,
        Classify(
            actor=AGENT,
            category=Category.BUSINESS_INQUIRY,
            topic=Topic.LOGIN,
            priority=Priority.B,
            reason="a colleague's login, known",
        ),
    )
    assert [e["automatic"] for e in await classified(desk, tid)] == [True, False]


async def test_a_policy_that_trusts_only_the_rules_keeps_them(desk_factory: DeskFactory) -> None:
    desk = await desk_factory(ServicePolicy(model_min_confidence=1.0))
    tid = (await desk.open("someone logged into my account", channel="email")).ticket_id
    await desk.skip(timedelta(seconds=5), tid)
    assert await classified(desk, tid) == []
    assert (await desk.tickets.view(tid)).classification.category is Category.BUSINESS_INQUIRY
