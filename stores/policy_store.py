"""Which policy a task queue's workers run: written by each worker at start, read by the
API (a ticket keeps the policy of the process that starts it, which is the API)."""

from __future__ import annotations

import hashlib

from activities.database import Pool
from workflows.policy import ServicePolicy


def fingerprint(policy: ServicePolicy) -> str:
    return hashlib.sha256(policy.model_dump_json().encode()).hexdigest()[:16]


async def publish(pool: Pool, task_queue: str, policy: ServicePolicy) -> None:
    await pool.execute(
        "INSERT INTO service_policy (task_queue, fingerprint, policy) VALUES ($1, $2, $3)"
        " ON CONFLICT (task_queue) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,"
        " policy = EXCLUDED.policy, written_at = now()",
        task_queue,
        fingerprint(policy),
        policy.model_dump(mode="json"),
    )


async def compare(pool: Pool, task_queue: str, policy: ServicePolicy) -> str:
    """ "ok", or what differs, in words for /readyz and the start-up log."""
    row = await pool.fetchrow(
        "SELECT fingerprint, policy FROM service_policy WHERE task_queue = $1", task_queue
    )
    if row is None:
        return "ok (no worker has published its policy yet)"
    if row["fingerprint"] == fingerprint(policy):
        return "ok"
    theirs, ours = row["policy"], policy.model_dump(mode="json")
    fields = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
    return (
        f"differs from the workers' in {', '.join(fields[:8])}: give the API and the workers "
        "the same TICKETFLOW_POLICY_FILE and overrides"
    )
