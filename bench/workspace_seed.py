"""The read model a busy help desk's queue reads: generated `tickets` rows, COPYed in.

Most tickets closed, some thousands open: every status, priority, category, topic,
channel and tier; ~50 agents; ten departments; each open row's SLA columns (due, warned,
breached, escalated, paused, first reply owed) as the ticket would have them now.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from activities.projection import COLUMNS
from workflows.policy import ServicePolicy, first_response_promise, tag_for
from workflows.vocabulary import Category, Channel, CloseReason, Priority, TicketStatus, Tier, Topic

AGENTS = tuple(f"agent-{number:02d}" for number in range(50))
SUBJECTS = (
    "支付失败, 一直提示网络错误",
    "無法登入, 驗證碼收不到",
    "订单显示已发货但物流没有更新",
    "退款申请提交三天了还没到账",
    "提现被拒绝, 原因不明",
    "会员自动续费了, 我没有同意",
    "Cannot log in after changing my phone number",
    "Refund still not received after a week",
    "App crashes when I open my orders",
    "建议增加夜间模式",
    "客服态度很差, 要投诉",
    "帳號被盜, 有陌生裝置登入",
)

# The share of tickets still open: a few thousand of 100,000.
OPEN_SHARE = 0.06
# The policy's seven departments and three more: the seeded queue API's policy has ten.
EXTRA_DEPARTMENTS = {
    "logistics": "queue://logistics",
    "legal": "queue://legal",
    "partnerships": "queue://partnerships",
}


def _record(**values: Any) -> tuple[Any, ...]:
    """One row for COPY, in the read model's column order (`activities.projection`)."""
    missing = set(COLUMNS) - set(values)
    if missing or len(values) != len(COLUMNS):
        raise ValueError(f"seeded row does not match the tickets table: {sorted(missing)}")
    return tuple(values[column] for column in COLUMNS)


_OPEN = (
    (TicketStatus.NEW, 10),
    (TicketStatus.IN_PROGRESS, 35),
    (TicketStatus.WAITING_ON_DEPARTMENT, 20),
    (TicketStatus.WAITING_ON_PARTNER, 5),
    (TicketStatus.WAITING_ON_CUSTOMER, 20),
    (TicketStatus.RESOLVED_AWAITING_CONFIRMATION, 10),
)
_PRIORITIES = ((Priority.E, 2), (Priority.A, 13), (Priority.B, 35), (Priority.C, 50))


def policy_of_ten() -> ServicePolicy:
    base = ServicePolicy()
    return base.model_copy(update={"departments": base.departments | EXTRA_DEPARTMENTS})


def generate_tickets(
    count: int, policy: ServicePolicy, now: datetime, seed: int = 8
) -> list[tuple[Any, ...]]:
    """`count` rows of the read model as the projection would have left them at `now`."""
    rng = random.Random(seed)
    departments = sorted(policy.departments)
    statuses = [s for s, _ in _OPEN], [w for _, w in _OPEN]
    priorities = [p for p, _ in _PRIORITIES], [w for _, w in _PRIORITIES]
    rows = []
    for number in range(count):
        priority = rng.choices(*priorities)[0]
        category, topic = rng.choice(list(Category)), rng.choice(list(Topic))
        channel = rng.choice(list(Channel))
        tier = Tier.VIP if rng.random() < 0.1 else Tier.STANDARD
        window = policy.sla[priority].within
        promise = first_response_promise(policy, channel, tier)
        closed = rng.random() >= OPEN_SHARE
        status = TicketStatus.CLOSED if closed else rng.choices(*statuses)[0]
        if closed:
            age = timedelta(days=rng.uniform(1, 180))
        elif status is TicketStatus.NEW:
            age = min(window, promise * 2) * rng.uniform(0.01, 1)
        else:
            # Spread over 1.4 SLA windows: most in time, some warned, some breached.
            age = window * rng.uniform(0.02, 1.4)
        opened_at = now - age
        answered = status is not TicketStatus.NEW
        first_response_at = (
            opened_at + min(promise * rng.uniform(0.2, 1.5), age * 0.5) if answered else None
        )
        sla_due_at = opened_at + window
        kept = closed or status is TicketStatus.RESOLVED_AWAITING_CONFIRMATION
        due_at = None if kept else sla_due_at
        breached = (due_at is not None and due_at <= now) or (closed and rng.random() < 0.08)
        warned_at = opened_at + window * 0.75
        sla_warned_at = warned_at if (due_at is not None and warned_at <= now) or breached else None
        paused_since = (
            now - min(age, timedelta(hours=20)) * rng.uniform(0.1, 1)
            if status is TicketStatus.WAITING_ON_CUSTOMER
            else None
        )
        worked_at = departments if status is TicketStatus.WAITING_ON_DEPARTMENT else []
        held = rng.sample(worked_at, rng.choice((1, 1, 2))) if worked_at else []
        if not held and rng.random() < 0.15:
            held = [rng.choice(departments)]
        resolved_at = closed_at = None
        if closed:
            resolved_at = opened_at + timedelta(minutes=rng.uniform(10, 3 * 24 * 60))
            closed_at = min(now, resolved_at + timedelta(hours=rng.uniform(0, 72)))
        assignee = (
            None
            if (status is TicketStatus.NEW and rng.random() < 0.8)
            or (not closed and rng.random() < 0.04)
            else rng.choice(AGENTS)
        )
        rows.append(
            _record(
                ticket_id=f"ws-{number:07d}",
                status=status.value,
                priority=priority.value,
                category=category.value,
                topic=topic.value,
                channel=channel.value,
                tier=tier.value,
                customer_id=f"cust-{rng.randrange(40_000):05d}",
                tag=tag_for(policy, category, topic, priority),
                assignee=assignee,
                departments=held,
                transfers=len(held),
                sla_due_at=sla_due_at,
                sla_breached=breached,
                escalated=breached,  # the ladder's first step is taken at the breach
                root_cause="產品缺陷-支付流程" if closed and rng.random() < 0.05 else None,
                reopen_count=1 if closed and rng.random() < 0.03 else 0,
                first_response_seconds=None
                if first_response_at is None
                else (first_response_at - opened_at).total_seconds(),
                opened_at=opened_at,
                first_response_at=first_response_at,
                resolved_at=resolved_at,
                closed_at=closed_at,
                close_reason=rng.choice(list(CloseReason)).value if closed else None,
                csat=rng.choice((5, 5, 4, 4, 3, 2, 1)) if closed and rng.random() < 0.6 else None,
                nps=rng.randint(0, 10) if closed and rng.random() < 0.4 else None,
                last_seq=rng.randint(3, 24),
                updated_at=closed_at or (now - age * rng.uniform(0, 0.5)),
                subject=rng.choice(SUBJECTS),
                due_at=due_at,
                sla_paused_since=paused_since,
                sla_paused_seconds=0.0,
                first_response_due_at=None if answered else opened_at + promise,
                sla_warned_at=sla_warned_at,
            )
        )
    return rows


@dataclass(frozen=True)
class Seeded:
    rows: int
    open: int
    seconds: float
    table_mib: float


async def seed(url: str, rows: int, policy: ServicePolicy) -> Seeded:
    """COPY the generated rows in (the store tells of changes after its appends: a COPY
    tells no one), then VACUUM ANALYZE."""
    started = time.perf_counter()
    records = await asyncio.to_thread(generate_tickets, rows, policy, datetime.now(UTC))
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table("tickets", records=records, columns=COLUMNS)
        seconds = time.perf_counter() - started
        await conn.execute("VACUUM ANALYZE tickets")
        size = await conn.fetchval("SELECT pg_total_relation_size('tickets')")
        open_rows = await conn.fetchval("SELECT count(*) FROM tickets WHERE status <> 'closed'")
    finally:
        await conn.close()
    return Seeded(rows, int(open_rows), seconds, size / 2**20)
