"""Automatic classification and tags: pure rules over text and context."""

from __future__ import annotations

import pytest

from workflows.classification import classify_intake, fold
from workflows.contracts import Intake
from workflows.policy import ServicePolicy, tag_for
from workflows.primitives import ContextSnapshot
from workflows.privacy import mask
from workflows.vocabulary import Category, Channel, Priority, Topic


def intake(subject: str, description: str = "", affected: int | None = None) -> Intake:
    return Intake(
        idempotency_key="k",
        channel=Channel.EMAIL,
        customer_id="c",
        subject=subject,
        description=description or subject,
        context=ContextSnapshot(affected_users=affected),
    )


@pytest.mark.parametrize(
    ("subject", "category", "topic", "priority"),
    [
        ("全量用户无法下单", Category.TECHNICAL_FAULT, Topic.ORDER, Priority.E),
        ("被盗刷了, 钱没了", Category.ACCOUNT_SECURITY, Topic.OTHER, Priority.E),
        ("無法提現", Category.TECHNICAL_FAULT, Topic.WITHDRAWAL, Priority.A),
        ("无法提现", Category.TECHNICAL_FAULT, Topic.WITHDRAWAL, Priority.A),
        ("I cannot log in", Category.TECHNICAL_FAULT, Topic.LOGIN, Priority.A),
        ("密碼洩露, 有異常登錄", Category.ACCOUNT_SECURITY, Topic.LOGIN, Priority.A),
        ("會員怎麼續費", Category.BUSINESS_INQUIRY, Topic.MEMBERSHIP, Priority.B),
        ("验证码收不到", Category.TECHNICAL_FAULT, Topic.VERIFICATION_CODE, Priority.B),
        ("建议增加夜间模式", Category.COMPLAINT_SUGGESTION, Topic.OTHER, Priority.C),
        ("客服态度差", Category.COMPLAINT_SUGGESTION, Topic.OTHER, Priority.B),
    ],
)
def test_classifies_chinese_and_english(
    subject: str, category: Category, topic: Topic, priority: Priority
) -> None:
    result = classify_intake(intake(subject))
    assert (result.category, result.topic, result.priority) == (category, topic, priority)
    assert result.reason


def test_affected_users_in_context_raise_priority() -> None:
    assert classify_intake(intake("支付失败了", affected=30)).priority is Priority.A
    assert classify_intake(intake("页面报错", affected=5000)).priority is Priority.E


def test_traditional_folds_to_simplified() -> None:
    assert fold("登錄 提現 驗證碼") == "登录 提现 验证码"


def test_tags_use_policy_labels() -> None:
    policy = ServicePolicy()
    assert tag_for(policy, Category.TECHNICAL_FAULT, Topic.PAYMENT, Priority.E) == "故障-支付-E級"
    assert (
        tag_for(policy, Category.BUSINESS_INQUIRY, Topic.MEMBERSHIP, Priority.A) == "咨詢-會員-A級"
    )


@pytest.mark.parametrize(
    ("said", "shown"),
    [
        ("我的手机13812345678收不到验证码", "我的手机[phone]收不到验证码"),
        ("mail me at a.b+c@example.com", "mail me at [email]"),
        ("身份证 11010519491231002X 提现", "身份证 [id] 提现"),
        ("卡号 6222 0212 3456 7890 123 扣款", "卡号 [card] 扣款"),
        ("call +86 138 1234 5678 or 021-6123-4567", "call [phone] or [phone]"),
        ("App 7.3.0 在 Android 15 闪退, 订单 500 元", "App 7.3.0 在 Android 15 闪退, 订单 500 元"),
        ("座机01012345678, 或拨打4008123123", "座机[phone], 或拨打[phone]"),
        ("手机 138.1234.5678", "手机 [phone]"),
        ("台湾身份证 A123456789, 香港 A123456(7)", "台湾身份证 [id], 香港 [id]"),
        ("2026-11-30 下单, 退款 1234567 元", "2026-11-30 下单, 退款 1234567 元"),
    ],
)
def test_personal_data_is_masked_and_the_rest_kept(said: str, shown: str) -> None:
    assert mask(said) == shown
