"""`make demo`: realistic tickets on the running dev stack, an hour of policy per second.

Opens tickets across every category, priority and channel, then acts on them the way
agents, departments, partners and customers would, so the Temporal UI shows whole
lifecycles within a minute: breached first responses, an E-level emergency, daily 10:00
reminders, upgrade reviews, partner updates, reopen, and the three ways to close.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from api.client import TicketClient
from workers.settings import load_settings
from workers.temporal_client import connect_temporal
from workflows.contracts import (
    Close,
    CustomerReply,
    Dispatch,
    EngagePartner,
    Intake,
    PartnerCallback,
    PostProgress,
    RecordMilestone,
    Resolve,
    Respond,
)
from workflows.primitives import Actor, ContextSnapshot
from workflows.vocabulary import Channel, CustomerReplyKind, Milestone, ResultKind, Role, Tier

DEMO_TIME_SCALE = 3600.0  # one hour of policy per second of wall clock

AGENT = Actor(id="agent-demo", role=Role.AGENT)
TECH = Actor(id="tech-demo", role=Role.DEPARTMENT)

# (channel, tier, subject, description, region/affected users)
TICKETS: list[tuple[Channel, Tier, str, str, int | None]] = [
    (Channel.APP_CHAT, Tier.VIP, "全量用户无法下单", "所有用户都无法下单, 支付页面报错 500", 5000),
    (Channel.HOTLINE, Tier.STANDARD, "無法提現", "我無法提現, 一直顯示處理中", None),
    (
        Channel.WEB_CHAT,
        Tier.STANDARD,
        "Cannot log in",
        "Login fails for many users in my region",
        40,
    ),
    (Channel.EMAIL, Tier.STANDARD, "会员怎么续费", "请问会员怎么续费, 自动续费在哪里关", None),
    (
        Channel.APP_FEEDBACK,
        Tier.STANDARD,
        "建议增加夜间模式",
        "希望 app 有夜间模式, 晚上太亮",
        None,
    ),
    (Channel.SOCIAL_DM, Tier.VIP, "密码泄露", "我的密码泄露了, 有异常登录记录", None),
    (Channel.WEB_FORM, Tier.STANDARD, "退款没到账", "退款三天了还没到账", None),
    (Channel.APP_CHAT, Tier.STANDARD, "验证码收不到", "注册时验证码一直收不到", None),
    (Channel.EMAIL, Tier.VIP, "客服态度差", "投诉: 昨天电话客服态度很差", None),
]


def intake(channel: Channel, tier: Tier, subject: str, text: str, affected: int | None) -> Intake:
    return Intake(
        idempotency_key=f"demo-{uuid.uuid4()}",
        channel=channel,
        customer_id=f"cust-{uuid.uuid4().hex[:8]}",
        tier=tier,
        subject=subject,
        description=text,
        context=ContextSnapshot(
            device_model="iPhone 15",
            os_version="iOS 18.1",
            app_version="7.3.0",
            operation_path=["home", "cart", "pay"],
            affected_users=affected,
        ),
    )


def resolve(root_cause: str, kind: ResultKind = ResultKind.TECHNICAL) -> Resolve:
    return Resolve(actor=AGENT, result_kind=kind, message="已处理, 请重试", root_cause=root_cause)


async def main() -> None:
    settings = load_settings()
    policy = settings.policy.model_copy(update={"time_scale": DEMO_TIME_SCALE})
    client = await connect_temporal(settings)
    tickets = TicketClient(client, task_queue=settings.task_queue, policy=policy)
    opened = [await tickets.open(intake(*spec)) for spec in TICKETS]
    for started in opened:
        await tickets.read_back(started, timedelta(minutes=1))
    ids = [t.ticket_id for t in opened]
    print(f"opened {len(ids)} tickets (time scale {DEMO_TIME_SCALE:.0f}x)")
    emergency, withdraw, login, renew, night_mode, leak, refund, sms, complaint = ids

    await tickets.act(emergency, Respond(actor=AGENT, message="紧急处理中"))
    await tickets.act(
        emergency, RecordMilestone(actor=AGENT, milestone=Milestone.TEMPORARY_FIX, note="回滚")
    )
    await tickets.act(
        withdraw, Dispatch(actor=AGENT, departments=["tech", "finance"], note="提现卡单")
    )
    await tickets.act(withdraw, PostProgress(actor=TECH, department="tech", note="定位到银行通道"))
    await tickets.act(login, Respond(actor=AGENT, message="正在排查"))
    await tickets.act(renew, Respond(actor=AGENT, message="在 我的-会员 中续费"))
    await tickets.act(renew, resolve("咨詢-會員續費", ResultKind.TECHNICAL))
    await tickets.act(
        night_mode,
        Close(actor=AGENT, long_term_plan="夜间模式已排入 Q3", root_cause="產品需求-夜間模式"),
    )
    await tickets.act(leak, Respond(actor=AGENT, message="已冻结账户, 风控处理中"))
    # Two policy days, as the partner reads them: scaled like every other promise here.
    opened_at = (await client.get_workflow_handle(refund).describe()).start_time
    expected = opened_at + timedelta(days=2) / DEMO_TIME_SCALE
    await tickets.act(
        refund,
        EngagePartner(actor=AGENT, partner="unionpay", problem="退款卡单", expected_by=expected),
    )
    await tickets.act(complaint, Respond(actor=AGENT, message="非常抱歉"))
    await tickets.act(complaint, resolve("服務態度-電話客服", ResultKind.COMPENSATION))

    await asyncio.sleep(3)  # a few policy hours pass: first responses breach, SLAs run
    await tickets.customer_reply(renew, CustomerReply(reply_id="r1", kind=CustomerReplyKind.SOLVED))
    await tickets.customer_reply(
        complaint, CustomerReply(reply_id="r1", kind=CustomerReplyKind.NOT_SOLVED)
    )
    await tickets.act(complaint, resolve("服務態度-電話客服", ResultKind.COMPENSATION))
    await asyncio.sleep(10)  # ~10 policy hours: partner updates every 6 h
    await tickets.partner_callback(
        refund, PartnerCallback(callback_id="cb-1", partner="unionpay", answer="已退回")
    )
    await tickets.act(refund, resolve("第三方-退款通道"))
    # Closed tickets ask for CSAT (1-5) and NPS (0-10): the dashboard's satisfaction panel.
    for ticket, csat, nps in ((renew, 5, 9), (night_mode, 3, 6)):
        await tickets.customer_reply(
            ticket, CustomerReply(reply_id="csat", kind=CustomerReplyKind.CSAT, score=csat)
        )
        await tickets.customer_reply(
            ticket, CustomerReply(reply_id="nps", kind=CustomerReplyKind.NPS, score=nps)
        )
    del sms  # left alone on purpose: its live first response breaches
    print(NEXT_STEPS.format(ui=ui_url(), api=settings.api.url))


NEXT_STEPS = """acting done. Next:
  the workspace    {api}/app/  (sign in with the agent key `make dev` printed)
  the tickets      {ui}
                   e.g. TicketPriority = 'E' AND TicketStatus != 'closed'
  the dashboard    {api}/dashboard  (the manager key `make dev` printed)
  a weekly review  .venv/bin/ticketflow review start --so-far   (this week, as far as it went)
                   then {api}/reviews/<week> or `ticketflow review show <week>`"""


def ui_url() -> str:
    from workers.devspec import load_dev_spec

    spec = load_dev_spec()
    return f"http://localhost:{spec.ui_port}/namespaces/{spec.namespace}/workflows"


if __name__ == "__main__":
    asyncio.run(main())
