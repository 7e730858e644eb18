"""When the relay gives up on an outbox row: the one rule for every workflow that sends
(tickets, weekly reviews, surge investigations).

The relay signals `delivery_failed` to the row's owner, the workflow whose id the row
carries (activities/delivery.py). The owner keeps the failure in its record, drops a
redelivered signal, and hands the supervisors an alert through its own outbox path,
unless the row was itself such an alert: sending it again to the same unreachable
supervisors would loop (the relay logs that one). Pure, so each workflow calls it from
its handler.
"""

from __future__ import annotations

from workflows.contracts import DeliveryFailure, Handoff, HandoffFacts, HandoffKind
from workflows.policy import ServicePolicy
from workflows.vocabulary import Priority

# The signal the relay sends to a row's owner.
SIGNAL = "delivery_failed"
# Failed rows an owner remembers, to drop the relay's redeliveries.
KEPT = 50


def first_report(seen: list[str], failure: DeliveryFailure) -> bool:
    """Whether this failure is news (`seen` remembers the last `KEPT` rows reported)."""
    if failure.dedupe_key in seen:
        return False
    seen.append(failure.dedupe_key)
    del seen[:-KEPT]
    return True


def alerts_supervisors(failure: DeliveryFailure) -> bool:
    """Not for a failed alert: the supervisors it could not reach would not get another."""
    return failure.kind is not HandoffKind.DELIVERY_FAILED


def alert_facts(failure: DeliveryFailure) -> HandoffFacts:
    """What the supervisors are told: the staff templates word it (`delivery_failed`)."""
    return HandoffFacts(
        failed_kind=failure.kind,
        destination=failure.destination,
        attempts=failure.attempts,
        error=failure.error,
    )


def failure_alert(
    owner_id: str,
    failure: DeliveryFailure,
    policy: ServicePolicy,
    *,
    event_seq: int | None,
    tag: str,
    priority: Priority,
) -> Handoff | None:
    """The supervisors' alert about a failed row of `owner_id`, or None for a failed alert."""
    if not alerts_supervisors(failure):
        return None
    return Handoff(
        ticket_id=owner_id,
        # One alert per failed row, however often the relay reports it.
        dedupe_key=f"{owner_id}:{HandoffKind.DELIVERY_FAILED.value}:{failure.dedupe_key}",
        event_seq=event_seq,
        kind=HandoffKind.DELIVERY_FAILED,
        recipients=[policy.supervisor_queue],
        facts=alert_facts(failure),
        tag=tag,
        priority=priority,
    )
