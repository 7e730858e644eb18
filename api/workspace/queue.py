"""The queue: one table of views (each a filter of the read model, for the roles that
see it), their counts in one scan, and the rows as agents read them, with the deadline
each counts down to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from api.access import Caller, RoleKind
from api.read_model import TicketFilter
from api.schemas import TicketSummary
from api.workspace.labels import N_
from api.workspace.shared_reads import SharedReads
from workflows.privacy import excerpt

_AGENTS = frozenset({RoleKind.AGENT, RoleKind.OPERATOR})


@dataclass(frozen=True)
class View:
    name: str
    label: str
    roles: frozenset[RoleKind]
    filter: Callable[[Caller], TicketFilter]
    # Different for each person (their own tickets): not shared between pages.
    personal: bool = False


VIEWS: tuple[View, ...] = (
    # A resolved ticket waits for the customer's confirmation (and closes by itself): it
    # leaves the views of work to do, for "waiting on the customer", until it reopens.
    View(
        "mine",
        N_("My open tickets"),
        _AGENTS,
        lambda me: TicketFilter(assignee=me.name, resolved=False),
        personal=True,
    ),
    View(
        "unassigned",
        N_("Unassigned"),
        _AGENTS,
        lambda me: TicketFilter(unassigned=True, resolved=False),
    ),
    View(
        "breaching",
        N_("Breaching soon"),
        _AGENTS,
        lambda me: TicketFilter(warned=True, resolved=False),
    ),
    View(
        "overdue",
        N_("Overdue"),
        _AGENTS | {RoleKind.DEPARTMENT},
        lambda me: TicketFilter(overdue=True, resolved=False),
    ),
    View(
        "waiting_customer",
        N_("Waiting on the customer"),
        _AGENTS,
        lambda me: TicketFilter(status=["waiting_on_customer", "resolved_awaiting_confirmation"]),
    ),
    View(
        "waiting_department",
        N_("Waiting on a department"),
        _AGENTS | {RoleKind.DEPARTMENT},
        lambda me: TicketFilter(status=["waiting_on_department"]),
    ),
    View(
        "escalated",
        N_("Escalation ladder"),
        frozenset({RoleKind.OPERATOR}),
        lambda me: TicketFilter(escalated=True),
    ),
    View(
        "all",
        N_("All open"),
        _AGENTS | {RoleKind.DEPARTMENT},
        lambda me: TicketFilter(),
    ),
)
_BY_NAME = {view.name: view for view in VIEWS}


def views_for(caller: Caller) -> list[View]:
    return [view for view in VIEWS if caller.kind in view.roles]


def default_view(caller: Caller) -> View:
    name = {RoleKind.OPERATOR: "escalated", RoleKind.DEPARTMENT: "all"}.get(caller.kind, "mine")
    return _BY_NAME[name]


def view_named(caller: Caller, name: str | None) -> View:
    found = _BY_NAME.get(name or "")
    return found if found is not None and caller.kind in found.roles else default_view(caller)


def scoped(caller: Caller, chosen: TicketFilter) -> TicketFilter:
    """What the caller may see of the chosen filter: open tickets, and a department's
    own work orders only, whatever the query says."""
    scope = caller.scope if caller.kind is RoleKind.DEPARTMENT else chosen.department
    return replace(chosen, open=True, department=scope)


@dataclass(frozen=True)
class Row:
    ticket: TicketSummary
    subject: str
    deadline_kind: str | None
    deadline_at: datetime | None

    @property
    def paused(self) -> bool:
        return self.ticket.sla_paused_since is not None


def as_row(ticket: TicketSummary) -> Row:
    """The row with the deadline it counts down to: the first reply still owed or the
    SLA still to keep, whichever comes first."""
    due = [
        (kind, at)
        for kind, at in (("first_response", ticket.first_response_due_at), ("sla", ticket.due_at))
        if at is not None
    ]
    kind, at = min(due, key=lambda pair: pair[1]) if due else (None, None)
    return Row(ticket, excerpt(ticket.subject or "", 80), kind, at)


@dataclass(frozen=True)
class Queue:
    view: View
    counts: dict[str, int]
    rows: list[Row]
    next_cursor: str | None


async def read_queue(
    reads: SharedReads,
    caller: Caller,
    view: View,
    chosen: TicketFilter,
    limit: int,
    cursor: str | None = None,
) -> Queue:
    """The view's page and every view's count. The views all pages share are counted in
    one scan of the open tickets; a personal view is counted apart, through its index,
    so that fifty people's pages share that scan."""
    common = scoped(caller, chosen)
    shown = views_for(caller)
    counts = await reads.counts(common, {v.name: v.filter(caller) for v in shown if not v.personal})
    for personal in (v for v in shown if v.personal):
        own = scoped(caller, replace(common, **_set(personal.filter(caller))))
        counts |= await reads.counts(own, {personal.name: TicketFilter()})
    page = await reads.page(
        scoped(caller, replace(common, **_set(view.filter(caller)))), limit, cursor
    )
    return Queue(
        view,
        {v.name: counts[v.name] for v in shown},
        [as_row(item) for item in page.items],
        page.next_cursor,
    )


def _set(view_filter: TicketFilter) -> dict[str, Any]:
    """The fields a view sets (the rest are the agent's filters)."""
    blank = TicketFilter()
    return {
        name: value for name, value in vars(view_filter).items() if value != getattr(blank, name)
    }
