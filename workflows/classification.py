"""Automatic classification of an intake: category, topic and priority, with the reason.

Rules over text and context, in Simplified and Traditional Chinese and in English.
Traditional characters are folded to Simplified first, so one keyword list serves
customers who write 登录/提现 and those who write 登錄/提現. An agent can always
override the result with the `classify` action; this only gives the ticket a start.

Then what a classification means for the ticket (SPEC §2), as pure functions of the
state, the policy and an instant that return what to record: a new one's tag and SLA,
and the urgent flows E and account security start.
"""

from __future__ import annotations

from datetime import datetime

from workflows import events as ev
from workflows import sla_clock
from workflows.contracts import (
    Classification,
    HandoffFacts,
    HandoffKind,
    Intake,
    MessageKind,
    MessageParams,
    ModelClassification,
    TicketState,
)
from workflows.policy import ServicePolicy, is_live, is_raise, sla_target, tag_for
from workflows.ticket_record import Entry, HandOff, Say
from workflows.vocabulary import Category, Priority, Topic

# Only the characters our keywords use: folding is for matching, not for display.
_TRADITIONAL_TO_SIMPLIFIED = str.maketrans(
    "洩錄現資帳號戶碼驗證訂單會員錢無轉異竊盜險風議務態問題為啟動閃當機據遺還區"
    "條費額處應複隊卡損們這個級網絡點擊請與",
    "泄录现资账号户码验证订单会员钱无转异窃盗险风议务态问题为启动闪当机据遗还区"
    "条费额处应复队卡损们这个级网络点击请与",
)

_CATEGORY_RULES: tuple[tuple[Category, tuple[str, ...]], ...] = (
    (
        Category.ACCOUNT_SECURITY,
        (
            "密码泄露",
            "盗号",
            "被盗",
            "异常登录",
            "陌生设备",
            "盗刷",
            "资金异常",
            "账户异常",
            "被冻结",
            "password leak",
            "hacked",
            "unusual login",
            "unauthorized",
            "stolen",
            "suspicious",
        ),
    ),
    (
        Category.TECHNICAL_FAULT,
        (
            "闪退",
            "崩溃",
            "报错",
            "错误",
            "失败",
            "无法",
            "不能",
            "打不开",
            "白屏",
            "卡死",
            "数据丢失",
            "收不到",
            "没收到",
            "crash",
            "error",
            "fail",
            "cannot",
            "can't",
            "unable",
            "not working",
            "data loss",
            "not received",
            "broken",
            "500",
        ),
    ),
    (
        Category.COMPLAINT_SUGGESTION,
        (
            "投诉",
            "态度",
            "建议",
            "希望",
            "体验",
            "不满",
            "complain",
            "rude",
            "attitude",
            "suggest",
            "would be nice",
            "feature request",
            "wish",
        ),
    ),
)

_TOPIC_RULES: tuple[tuple[Topic, tuple[str, ...]], ...] = (
    (Topic.WITHDRAWAL, ("提现", "withdraw", "cash out")),
    (Topic.REFUND, ("退款", "退货", "refund")),
    (Topic.VERIFICATION_CODE, ("验证码", "短信码", "verification code", "otp", "sms code")),
    (Topic.LOGIN, ("登录", "登陆", "登入", "密码", "login", "log in", "sign in", "password")),
    (Topic.MEMBERSHIP, ("会员", "vip", "membership", "subscription", "续费")),
    (Topic.ORDER, ("订单", "下单", "购买", "order", "checkout", "purchase")),
    (Topic.PAYMENT, ("支付", "付款", "扣款", "扣费", "payment", "pay ", "charge", "card")),
)

_FUNDS_LOSS = (
    "资金损失",
    "钱没了",
    "被扣",
    "重复扣款",
    "盗刷",
    "money lost",
    "lost money",
    "double charged",
    "charged twice",
    "unauthorized charge",
)
_SYSTEM_WIDE = (
    "所有用户",
    "全部用户",
    "全量用户",
    "全站",
    "大面积",
    "都无法",
    "everyone",
    "all users",
    "nobody can",
    "no user can",
    "site down",
    "outage",
)
_MANY_USERS = (
    "很多用户",
    "大量用户",
    "多个用户",
    "部分地区",
    "某地区",
    "批量",
    "many users",
    "multiple users",
    "in my region",
    "region",
)
_CORE_BLOCKED = (
    "无法提现",
    "不能提现",
    "提现失败",
    "无法登录",
    "不能登录",
    "登录失败",
    "无法支付",
    "支付失败",
    "无法下单",
    "cannot withdraw",
    "can't withdraw",
    "cannot log in",
    "can't log in",
    "cannot login",
    "payment failed",
    "cannot pay",
    "can't pay",
    "cannot order",
)
_SUGGESTION = ("建议", "希望", "体验", "suggest", "would be nice", "feature request", "wish")

# How many affected users in the context make a problem "many users" (A) or
# "system-wide" (E) even when the text does not say so.
_MANY_USERS_THRESHOLD = 20
_SYSTEM_WIDE_THRESHOLD = 1000


def fold(text: str) -> str:
    """Lower-case, Traditional folded to Simplified: the form every rule matches against."""
    return text.lower().translate(_TRADITIONAL_TO_SIMPLIFIED)


def _first_hit(text: str, words: tuple[str, ...]) -> str | None:
    return next((word for word in words if word in text), None)


def classify_intake(intake: Intake) -> Classification:
    text = fold(f"{intake.subject} {intake.description} {' '.join(intake.context.operation_path)}")
    reasons: list[str] = []

    category = Category.BUSINESS_INQUIRY
    for candidate, words in _CATEGORY_RULES:
        if hit := _first_hit(text, words):
            category = candidate
            reasons.append(f"category {candidate.value} by '{hit}'")
            break
    else:
        reasons.append("category business_inquiry: no fault, security or complaint wording")

    topic = Topic.OTHER
    for topic_candidate, words in _TOPIC_RULES:
        if hit := _first_hit(text, words):
            topic = topic_candidate
            reasons.append(f"topic {topic_candidate.value} by '{hit}'")
            break

    affected = intake.context.affected_users or 0
    if hit := _first_hit(text, _FUNDS_LOSS):
        priority, why = Priority.E, f"funds loss ('{hit}')"
    elif (hit := _first_hit(text, _SYSTEM_WIDE)) or affected >= _SYSTEM_WIDE_THRESHOLD:
        priority, why = Priority.E, f"system-wide failure ('{hit or f'{affected} users'}')"
    elif hit := _first_hit(text, _CORE_BLOCKED):
        priority, why = Priority.A, f"core function blocked ('{hit}')"
    elif (hit := _first_hit(text, _MANY_USERS)) or affected >= _MANY_USERS_THRESHOLD:
        priority, why = Priority.A, f"many users affected ('{hit or f'{affected} users'}')"
    elif category is Category.ACCOUNT_SECURITY:
        priority, why = Priority.A, "account security: the customer's account is at risk"
    elif category is Category.COMPLAINT_SUGGESTION and _first_hit(text, _SUGGESTION):
        priority, why = Priority.C, "suggestion or experience improvement"
    else:
        priority, why = Priority.B, "routine question or non-core function"
    reasons.append(f"priority {priority.value}: {why}")

    return Classification(
        category=category, topic=topic, priority=priority, reason="; ".join(reasons)
    )


def model_choice(
    rules_said: Classification, found: ModelClassification, threshold: float
) -> Classification | None:
    """The learned classifier's reading of the intake, field by field where it is at
    least `threshold` sure; the rules' answer stays where it is not (and as the
    explanation). None: the model would change nothing."""
    sure = {f for f, value in found.confidence.items() if value >= threshold}
    if rules_said.priority is Priority.E:
        sure.discard("priority")  # an emergency the rules saw is never downgraded
    chosen = Classification(
        category=found.category if "category" in sure else rules_said.category,
        topic=found.topic if "topic" in sure else rules_said.topic,
        priority=found.priority if "priority" in sure else rules_said.priority,
        reason=", ".join(f"{field} {found.confidence[field]:.2f}" for field in sorted(sure)),
    )
    if (chosen.category, chosen.topic, chosen.priority) == (
        rules_said.category,
        rules_said.topic,
        rules_said.priority,
    ):
        return None
    chosen.reason = f"model {found.model_version} ({chosen.reason}); rules: {rules_said.reason}"
    return chosen


def reclassify(
    state: TicketState,
    policy: ServicePolicy,
    now_is: Classification,
    now: datetime,
    *,
    automatic: bool = False,
    model_version: str | None = None,
) -> list[Entry]:
    """A new classification, by an agent or the learned model: its tag and the SLA of
    its priority, on the SLA clock (workflows.sla_clock.rebase)."""
    previous = state.classification
    previous_tag = state.tag
    state.classification = now_is
    state.tag = tag_for(policy, now_is.category, now_is.topic, now_is.priority)
    counts_from: datetime | None = None
    if now_is.priority is not previous.priority and state.sla_met_at is None:
        state.sla_milestone = sla_target(policy, now_is.priority).met_by
        counts_from = sla_clock.rebase(state, policy, previous.priority, now_is.priority, now)
    due = state.deadlines.sla
    told = not automatic or not is_live(policy, state.intake.channel)
    effects: tuple[Say, ...] = ()
    if (
        told
        and counts_from is not None
        and is_raise(previous.priority, now_is.priority)
        and (due is None or due > now)
    ):
        # The customer is told the new, shorter promise (one still to keep) if they were
        # told one (an async channel's acknowledgement, or an agent's reclassification).
        within = sla_target(policy, now_is.priority).within
        effects = (Say(MessageKind.PROMISE_CHANGED, MessageParams(within=within, until=due)),)
    classified = ev.Classified(
        category=now_is.category,
        topic=now_is.topic,
        priority=now_is.priority,
        tag=state.tag,
        previous_tag=previous_tag,
        reason=now_is.reason,
        automatic=automatic,
        sla_due_at=due,
        sla_counts_from=counts_from,
        model_version=model_version,
    )
    return [Entry(classified, effects)]


def urgent_flows(
    policy: ServicePolicy, now_is: Classification, previous: Classification | None
) -> list[Entry]:
    """E convenes the emergency group at once; account security starts risk control."""
    entries = []
    if now_is.priority is Priority.E and (previous is None or previous.priority is not Priority.E):
        groups = list(policy.emergency_group)
        target = sla_target(policy, Priority.E)
        facts = HandoffFacts(within=target.within, milestone=target.met_by)
        convened = HandOff(HandoffKind.EMERGENCY_GROUP, list(groups), facts)
        entries.append(Entry(ev.EmergencyGroupConvened(groups=groups), (convened,)))
    if now_is.category is Category.ACCOUNT_SECURITY and (
        previous is None or previous.category is not Category.ACCOUNT_SECURITY
    ):
        risk = policy.route_by_category[Category.ACCOUNT_SECURITY]
        started = HandOff(HandoffKind.RISK_CONTROL, [risk], HandoffFacts())
        entries.append(Entry(ev.RiskControlStarted(), (started,)))
    return entries
