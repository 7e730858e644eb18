"""Part 3: how much history a ticket writes, and what keeps a long ticket's runs short.

A 30-day ticket runs on a time-scaled policy (`ServicePolicy(time_scale=...)`: a day
of policy time passes in `day_seconds` real seconds) on the real dev server: it is
answered, handed to a department that never reports back, and left alone for 30 days
of daily 10:00 progress checks, daily upgrade reviews and an SLA breach, then finished.
It runs twice at once: on the bench's server (the server's default continue-as-new
suggestion) and on a second server whose suggestion threshold is lowered, to show that
continue-as-new ends each run near that threshold.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from api.client import TicketClient
from bench.lifecycle import RunStats, StepName, chain_stats, intake, open_ticket, ticket_step
from workflows.policy import ServicePolicy
from workflows.vocabulary import Channel

DAY = 86_400.0
# Temporal's own default for limit.historyCount.suggestContinueAsNew (server 1.32).
SERVER_DEFAULT_SUGGESTION = 4 * 1024


@dataclass
class LongTicket:
    ticket_id: str
    days: int
    runs: list[RunStats]

    @property
    def total_events(self) -> int:
        return sum(run.events for run in self.runs)

    @property
    def max_run_events(self) -> int:
        return max(run.events for run in self.runs)

    def count(self, event: str) -> int:
        return sum(run.counts[event] for run in self.runs)


async def long_ticket(tickets: TicketClient, key: str, days: int, day_seconds: float) -> LongTicket:
    """`tickets` must carry a policy with time_scale = DAY / day_seconds."""
    ticket_intake = intake(key, Channel.EMAIL)
    ticket_id = (await open_ticket(tickets, ticket_intake)).ticket_id
    await ticket_step(tickets, ticket_id, ticket_intake, "respond", 0)
    await ticket_step(tickets, ticket_id, ticket_intake, "dispatch", 1)
    await asyncio.sleep(days * day_seconds)
    finish: tuple[StepName, ...] = ("progress_done", "resolve", "solved")
    for index, step in enumerate(finish, start=2):
        await ticket_step(tickets, ticket_id, ticket_intake, step, index)
    await tickets.handle(ticket_id).result()
    return LongTicket(ticket_id, days, await chain_stats(tickets.temporal, ticket_id))


def workflow_bound() -> int:
    """The run length at which TicketWorkflow continues as new by itself (the policy's)."""
    return ServicePolicy().history_events_per_run


def events_per_day(long: LongTicket, base_events: int) -> float:
    """History a ticket like `long` adds per day open, beyond a short ticket's `base_events`."""
    return max(long.total_events - base_events, 1) / long.days


def days_to_reach(events: int, long: LongTicket, base_events: int) -> float:
    """How long a ticket like `long` stays open before one run would hold `events`, if
    nothing but the server's suggestion ended runs."""
    return (events - base_events) / events_per_day(long, base_events)
