"""Settings precedence: ServicePolicy defaults < policy file < environment."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from activities.calendars import with_public_holidays
from api.settings import ApiSettings
from workers.settings import ConfigurationError, Settings, load_settings
from workflows.policy import ServicePolicy, Weekday
from workflows.vocabulary import Milestone, Priority

POLICY_TOML = """
time_zone = "Europe/Berlin"
time_scale = 60

[first_response]
live_vip = 20
live_standard = "2m"

[sla.E]
within = "PT45M"
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own TICKETFLOW_* or DATABASE_URL must not change what these expect.
    for name in list(os.environ):
        if name.startswith("TICKETFLOW_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)


@pytest.fixture
def policy_toml(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY_TOML, encoding="utf-8")
    return path


def test_defaults() -> None:
    settings = load_settings()
    assert settings.task_queue == "tickets"
    assert settings.database_url is None
    assert settings.data_dir == Path(".data")
    # SPEC's defaults, with this year's public holidays resolved into the calendar.
    assert settings.policy == with_public_holidays(ServicePolicy(), datetime.now(UTC).date())
    assert settings.api.url == "http://127.0.0.1:8000"
    assert settings.temporal_profile is None
    assert settings.prometheus_bind is None


def test_the_workers_sticky_queue_wait_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK's 10 s by default: people on open tickets before a herd's pace (STICKY_WAIT).
    assert load_settings().sticky_wait == timedelta(seconds=10)
    monkeypatch.setenv("TICKETFLOW_STICKY_WAIT", "PT90S")
    assert load_settings().sticky_wait == timedelta(seconds=90)
    monkeypatch.setenv("TICKETFLOW_STICKY_WAIT", "PT0S")
    with pytest.raises(ConfigurationError, match="sticky_wait"):
        load_settings()


def test_a_persons_input_is_raised_past_a_herd_after_a_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().api.raise_when_behind == timedelta(seconds=5)
    monkeypatch.setenv("TICKETFLOW_API__RAISE_WHEN_BEHIND", "250ms")
    assert load_settings().api.raise_when_behind == timedelta(milliseconds=250)
    monkeypatch.setenv("TICKETFLOW_API__RAISE_WHEN_BEHIND", "off")
    assert load_settings().api.raise_when_behind is None


def test_the_workflow_task_slots_are_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().workflow_task_slots == 100  # the SDK's
    monkeypatch.setenv("TICKETFLOW_WORKFLOW_TASK_SLOTS", "10")
    assert load_settings().workflow_task_slots == 10
    monkeypatch.setenv("TICKETFLOW_WORKFLOW_TASK_SLOTS", "1")  # one, and a sticky task waits for it
    with pytest.raises(ConfigurationError, match="workflow_task_slots"):
        load_settings()


def test_the_workflow_sandbox_is_off_unless_turned_on(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().workflow_sandbox is False
    monkeypatch.setenv("TICKETFLOW_WORKFLOW_SANDBOX", "true")
    assert load_settings().workflow_sandbox is True


def test_environment_overrides_policy_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKETFLOW_POLICY__TIME_SCALE", "3600")
    monkeypatch.setenv("TICKETFLOW_POLICY__FIRST_RESPONSE__LIVE_VIP", "15")
    monkeypatch.setenv("TICKETFLOW_POLICY__SLA__E__WITHIN", "10m")
    policy = load_settings().policy
    assert policy.time_scale == 3600
    assert policy.first_response.live_vip == timedelta(seconds=15)
    assert policy.first_response.live_standard == timedelta(seconds=60)
    assert policy.sla[Priority.E].within == timedelta(minutes=10)
    # One SLA entry changed; its other fields and the other priorities keep their defaults.
    assert policy.sla[Priority.E].met_by is Milestone.TEMPORARY_FIX
    assert policy.sla[Priority.A] == ServicePolicy().sla[Priority.A]


def test_people_first_priorities_are_set_or_turned_off_by_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (ServicePolicy().priorities.person_waiting, ServicePolicy().priorities.quiet) == (2, 4)
    # `null` turns one off: that kind of append keeps the ticket's own priority.
    monkeypatch.setenv("TICKETFLOW_POLICY__PRIORITIES__PERSON_WAITING", "null")
    monkeypatch.setenv("TICKETFLOW_POLICY__PRIORITIES__QUIET", "5")
    priorities = load_settings().policy.priorities
    assert (priorities.person_waiting, priorities.quiet) == (None, 5)
    # A person's work must come before quiet tickets', not after.
    monkeypatch.setenv("TICKETFLOW_POLICY__PRIORITIES__PERSON_WAITING", "5")
    with pytest.raises(ConfigurationError, match="must come before quiet"):
        load_settings()


def test_policy_file_overrides_defaults(monkeypatch: pytest.MonkeyPatch, policy_toml: Path) -> None:
    monkeypatch.setenv("TICKETFLOW_POLICY_FILE", str(policy_toml))
    policy = load_settings().policy
    assert policy.time_zone == "Europe/Berlin"
    assert policy.time_scale == 60
    assert policy.first_response.live_vip == timedelta(seconds=20)
    assert policy.first_response.live_standard == timedelta(minutes=2)
    assert policy.sla[Priority.E].within == timedelta(minutes=45)
    assert policy.sla[Priority.C] == ServicePolicy().sla[Priority.C]
    assert policy.auto_close_after == timedelta(hours=72)


def test_environment_overrides_policy_file(
    monkeypatch: pytest.MonkeyPatch, policy_toml: Path
) -> None:
    monkeypatch.setenv("TICKETFLOW_POLICY_FILE", str(policy_toml))
    monkeypatch.setenv("TICKETFLOW_POLICY__FIRST_RESPONSE__LIVE_VIP", "15")
    monkeypatch.setenv("TICKETFLOW_POLICY__TIME_SCALE", "3600")
    policy = load_settings().policy
    assert policy.first_response.live_vip == timedelta(seconds=15)
    assert policy.time_scale == 3600
    assert policy.time_zone == "Europe/Berlin"  # from the file, not overridden


def test_policy_file_may_be_json_and_given_directly(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"auto_close_after": "48h", "time_scale": 2}), encoding="utf-8")
    policy = load_settings(policy_file=path).policy
    assert policy.auto_close_after == timedelta(hours=48)
    assert policy.time_scale == 2


def test_database_url_from_either_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://plain/db")
    assert load_settings().database_url == "postgresql://plain/db"
    monkeypatch.setenv("TICKETFLOW_DATABASE_URL", "postgresql://prefixed/db")
    assert load_settings().database_url == "postgresql://prefixed/db"


def test_nested_api_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKETFLOW_API__PORT", "9000")
    monkeypatch.setenv("TICKETFLOW_TASK_QUEUE", "tickets-eu")
    settings = load_settings()
    assert settings.api.url == "http://127.0.0.1:9000"
    assert settings.task_queue == "tickets-eu"


def test_unknown_time_zone_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKETFLOW_POLICY__TIME_ZONE", "Mars/Olympus_Mons")
    with pytest.raises(ConfigurationError, match=r"policy: unknown time zone 'Mars/Olympus_Mons'"):
        load_settings()


def test_unknown_time_zone_in_a_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('time_zone = "Asia/Atlantis"\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match="unknown time zone 'Asia/Atlantis'"):
        load_settings(policy_file=path)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("missing.toml", None, "No such file"),
        ("policy.yaml", "a: 1", "expected a .toml or .json file"),
        ("policy.toml", "time_zone = ", "policy file"),
        ("policy.json", '{"time_scale": 0}', "time_scale"),
    ],
)
def test_bad_policy_files_name_the_problem(
    tmp_path: Path, name: str, text: str | None, message: str
) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        load_settings(policy_file=path)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        # Issue 19 item 11: each of these loaded, and PT0S convened 57 reviews in 2 s.
        (
            "UPGRADE_REVIEW_AFTER",
            "PT0S",
            "policy.upgrade_review_after: must be at least 1h, got 0s",
        ),
        (
            "PARTNER_UPDATE_EVERY",
            "PT0S",
            "policy.partner_update_every: must be at least 1h, got 0s",
        ),
        ("SLA__E__WITHIN", "-PT30M", "policy.sla.E.within: must be at least 1s, got -30m"),
        (
            "REVIEW_CHECKPOINT_MAX",
            "-PT1H",
            "policy.review_checkpoint_max: must be at least 1h, got -1h",
        ),
        ("FIRST_RESPONSE__LIVE_VIP", "0", "policy.first_response.live_vip: must be at least 1s"),
        ("AUTO_CLOSE_AFTER", "PT0S", "policy.auto_close_after: must be at least 1s"),
        ("FEEDBACK_WINDOW", "400d", "policy.feedback_window: must be at most 90d, got 400d"),
        ("DELIVERY__FIRST_INTERVAL", "0", "policy.delivery.first_interval: must be at least 1s"),
        ("DELIVERY__MAX_INTERVAL", "2d", "policy.delivery.max_interval: must be at most 1d"),
        ("DELIVERY__GIVE_UP_AFTER", "10s", "policy.delivery.give_up_after: must be at least 1m"),
        ("DELIVERY__BACKOFF", "1000", "policy.delivery.backoff: must be at most 10"),
        ("SURGE__CHECK_EVERY", "1s", "policy.surge.check_every: must be at least 1m"),
        ("SURGE__COOLDOWN", "0", "policy.surge.cooldown: must be at least 1h"),
        ("REVIEW__LONGEST_FOLLOW_UP", "1h", "policy.review.longest_follow_up: must be at least 1d"),
        ("HISTORY_EVENTS_PER_RUN", "50000", "policy.history_events_per_run: must be at most 10000"),
    ],
)
def test_a_policy_out_of_bounds_is_refused_at_load_with_the_field_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(f"TICKETFLOW_POLICY__{variable}", value)
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        load_settings()


def test_bounds_on_lists_of_a_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    steps = [{"after": hour * 3600, "to": "service_lead"} for hour in range(12)]
    path.write_text(json.dumps({"escalation_ladder": steps}), encoding="utf-8")
    with pytest.raises(ConfigurationError, match="escalation_ladder: must be at most 10 entries"):
        load_settings(policy_file=path)


def test_the_bounds_hold_at_load_not_when_a_recorded_policy_is_decoded() -> None:
    """A ticket's policy is decoded again on every replay: what it recorded under an
    older release stays readable, however far out of today's bounds."""
    recorded = ServicePolicy(upgrade_review_after=timedelta(0)).model_dump(mode="json")
    assert ServicePolicy.model_validate(recorded).upgrade_review_after == timedelta(0)
    with pytest.raises(ConfigurationError, match=r"policy\.upgrade_review_after"):
        load_settings(policy=recorded)


def test_settings_class_stays_usable_directly() -> None:
    assert Settings(task_queue="q").task_queue == "q"


def test_the_api_is_handed_its_settings_and_the_tickets_it_serves() -> None:
    policy = ServicePolicy(time_scale=60)
    settings = Settings(task_queue="q", policy=policy, api={"port": 9000})
    config = settings.api_config()
    assert (config.task_queue, config.policy, config.api) == ("q", settings.policy, settings.api)
    assert config.policy.time_scale == 60
    other = ApiSettings(port=9001)
    assert settings.api_config(other).api is other


CALENDAR_TOML = """
[clocks.B]
sla = "business"
progress_check = "business"

[business_hours]
holidays = ["2026-12-31"]

[business_hours.week]
mon = ["09:00-12:00", "13:30-18:00"]
sat = ["10:00-16:00"]
"""


def test_a_business_calendar_from_a_file_gets_the_countrys_holidays(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(CALENDAR_TOML, encoding="utf-8")
    policy = load_settings(policy_file=path).policy
    assert policy.clocks[Priority.B].sla == "business"
    assert policy.clocks[Priority.E].sla == "calendar"  # unchanged priorities keep SPEC's
    calendar = policy.business_hours
    assert calendar.week[Weekday.SAT] == ["10:00-16:00"]
    # The file's own day off, and mainland China's holidays and 调休 days for this year.
    assert date(2026, 12, 31) in calendar.holidays
    this_year = datetime.now(UTC).year
    assert any(day.year == this_year for day in calendar.holidays if day.month == 10)
    assert calendar.workdays and all(day.weekday() >= 5 for day in calendar.workdays)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('escalation_ladder = [{after = "PT0S", to = "night_desk"}]', "without an address"),
        ('[business_hours.week]\nmon = ["18:00-09:00"]', "must end after it starts"),
        ('[business_hours]\npublic_holidays = "XX"', "no such country"),
        ('sla_warnings = [{at = 1.5, notify = "assignee"}]', "less than 1"),
    ],
)
def test_a_calendar_or_ladder_that_cannot_work_stops_the_start(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        load_settings(policy_file=path)


def test_a_files_week_replaces_the_default_one_and_empty_means_no_holidays(
    tmp_path: Path,
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        '[business_hours]\npublic_holidays = ""\n[business_hours.week]\n'
        'tue = ["09:00-17:00"]\nsat = ["10:00-14:00"]\n',
        encoding="utf-8",
    )
    calendar = load_settings(policy_file=path).policy.business_hours
    assert set(calendar.week) == {Weekday.TUE, Weekday.SAT}
    assert calendar.public_holidays is None and calendar.holidays == []
