"""Which language and zone a customer reads in, and which locale a hand-off is written in:
pure rules of the policy (workflows.language, workflows.policy)."""

from __future__ import annotations

import pytest

from workflows.contracts import Intake
from workflows.language import SIMPLIFIED_ONLY, TRADITIONAL_ONLY, region_of, script_locale
from workflows.policy import (
    ServicePolicy,
    reader_locale,
    region_time_zone,
    staff_locale,
)
from workflows.vocabulary import Channel

POLICY = ServicePolicy()


@pytest.mark.parametrize(
    ("text", "locale"),
    [
        ("提现一直失败，钱没到账", "zh-Hans"),
        ("提現一直失敗，錢沒到賬", "zh-Hant"),
        ("登入時出現錯誤，請幫忙處理", "zh-Hant"),
        ("全量用户无法下单", "zh-Hans"),
        # Characters both scripts share say nothing: Simplified, the seed's.
        ("提款", "zh-Hans"),
        # Chinese with an English word or two is Chinese; English with a name is English.
        ("我的 app 闪退了", "zh-Hans"),
        ("Hi, I cannot log in to 微信 since this morning", "en"),
        ("Where is my refund?", "en"),
        ("Où est mon remboursement ?", "en"),
        ("ログインできません", "ja"),
        ("로그인이 안 돼요", "ko"),
        ("12345 ???", None),
        ("", None),
    ],
)
def test_the_script_of_the_words_points_to_a_locale(text: str, locale: str | None) -> None:
    assert script_locale(text) == locale


def test_the_two_scripts_never_share_a_marker() -> None:
    assert not SIMPLIFIED_ONLY & TRADITIONAL_ONLY
    assert all(0x3400 <= ord(c) <= 0x9FFF for c in SIMPLIFIED_ONLY | TRADITIONAL_ONLY)


@pytest.mark.parametrize(
    ("tag", "region"),
    [
        ("zh-TW", "TW"),
        ("zh_Hant_HK", "HK"),
        ("zh-hant-mo", "MO"),
        ("es-419", "419"),
        ("en-US-u-ca-gregory", "US"),
        ("zh-Hant", None),
        ("en", None),
        ("zh-x-tw", None),
    ],
)
def test_the_region_of_a_locale(tag: str, region: str | None) -> None:
    assert region_of(tag) == region


def test_a_locale_given_wins_then_the_script_then_the_policy() -> None:
    assert reader_locale(POLICY, "zh-TW", "Where is my refund?") == "zh-TW"
    assert reader_locale(POLICY, None, "Where is my refund?") == "en"
    assert reader_locale(POLICY, None, "12345") == "zh-Hans"
    assert reader_locale(POLICY.model_copy(update={"default_locale": "en"}), None, "!!") == "en"


def test_the_region_picks_the_zone_where_the_policy_knows_it() -> None:
    assert region_time_zone(POLICY, "zh-TW") == "Asia/Taipei"
    assert region_time_zone(POLICY, "zh-Hant-HK") == "Asia/Hong_Kong"
    assert region_time_zone(POLICY, "zh-CN") == "Asia/Shanghai"
    # No region, or one whose zone the policy does not name: the policy's zone (None).
    assert region_time_zone(POLICY, "zh-Hant") is None
    assert region_time_zone(POLICY, "en-US") is None
    berlin = ServicePolicy.model_validate({"region_time_zones": {"de": "Europe/Berlin"}})
    assert region_time_zone(berlin, "de-DE") == "Europe/Berlin"
    with pytest.raises(ValueError, match="unknown time zone"):
        ServicePolicy.model_validate({"region_time_zones": {"TW": "Asia/Taipie"}})


def _intake(**fields: str) -> Intake:
    return Intake.model_validate(
        {"idempotency_key": "k", "channel": Channel.EMAIL, "customer_id": "c-1"} | fields
    )


def test_an_intake_is_settled_for_its_reader() -> None:
    english = _intake(subject="Refund", description="Where is my refund?").for_reader(POLICY)
    assert (english.locale, english.time_zone) == ("en", None)
    taiwan = _intake(subject="退款", description="退款在哪", locale="zh-TW").for_reader(POLICY)
    assert (taiwan.locale, taiwan.time_zone) == ("zh-TW", "Asia/Taipei")
    # Traditional words without a locale: zh-Hant, and the policy's zone (no region).
    hant = _intake(subject="退款", description="錢沒到賬").for_reader(POLICY)
    assert (hant.locale, hant.time_zone) == ("zh-Hant", None)
    # What the intake says stands.
    given = _intake(subject="退款", description="退款", locale="zh-TW", time_zone="Europe/Paris")
    assert given.for_reader(POLICY) == given


def test_hand_offs_are_in_the_companys_locale_unless_the_recipient_has_its_own() -> None:
    assert staff_locale(POLICY, "tech") == "zh-Hans"
    policy = ServicePolicy.model_validate(
        {
            "staff_locale": "zh-Hant",
            "staff_locales": {"tech": "en", "partner:": "en", "partner:sf-express": "zh-Hans"},
        }
    )
    assert staff_locale(policy, "tech") == "en"
    assert staff_locale(policy, "finance") == "zh-Hant"
    assert staff_locale(policy, "partner:dhl") == "en"
    assert staff_locale(policy, "partner:sf-express") == "zh-Hans"
    assert staff_locale(policy, "agent:7") == "zh-Hant"
