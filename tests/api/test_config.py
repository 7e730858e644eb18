"""Where keys and partner secrets come from: configuration, a keys file, or `make dev`."""

from __future__ import annotations

import json
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from api.access import KeyRing, configured_keys, hash_key, new_key
from api.dev_keys import DEV_ROLES, prepare_dev_api
from api.settings import ApiKeyEntry, ApiSettings, ConfigurationError
from tests.api.conftest import Stack
from workers.settings import load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TICKETFLOW_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)


def test_keys_and_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    key = new_key()
    entry = {"name": "mail-gateway", "role": "backend", "sha256": hash_key(key)}
    monkeypatch.setenv("TICKETFLOW_API__KEYS", json.dumps([entry]))
    monkeypatch.setenv("TICKETFLOW_API__PARTNER_SECRETS", '{"sf-express": "s3cret"}')
    monkeypatch.setenv("TICKETFLOW_API__SIGNATURE_TOLERANCE", "90s")
    api = load_settings().api
    caller = KeyRing(configured_keys(api)).authenticate(key)
    assert caller is not None and (caller.name, caller.role) == ("mail-gateway", "backend")
    assert api.partner_secrets["sf-express"].get_secret_value() == "s3cret"
    assert "s3cret" not in repr(api)
    assert api.signature_tolerance == timedelta(seconds=90)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "x", "role": "boss", "sha256": "0" * 64}, "unknown role 'boss'"),
        ({"name": "x", "role": "department:", "sha256": "0" * 64}, "unknown role"),
        ({"name": "x", "role": "agent", "sha256": "plain-key"}, "sha256"),
    ],
)
def test_bad_key_entries_are_clear_errors(
    monkeypatch: pytest.MonkeyPatch, entry: dict[str, str], message: str
) -> None:
    monkeypatch.setenv("TICKETFLOW_API__KEYS", json.dumps([entry]))
    with pytest.raises(ConfigurationError, match=message):
        load_settings()


def test_keys_file_adds_to_the_configured_keys(tmp_path: Path) -> None:
    key = new_key()
    path = tmp_path / "keys.toml"
    path.write_text(
        f'[[keys]]\nname = "ops"\nrole = "operator"\nsha256 = "{hash_key(key)}"\n',
        encoding="utf-8",
    )
    settings = ApiSettings(keys_file=path)
    ring = KeyRing(configured_keys(settings))
    assert ring.authenticate(key) is not None
    assert ring.authenticate("tfk_other") is None

    path.write_text('[[keys]]\nname = "ops"\nrole = "root"\nsha256 = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"keys\.toml"):
        configured_keys(settings)


def test_dev_keys_are_made_once_per_data_directory(tmp_path: Path) -> None:
    first, banner = prepare_dev_api(ApiSettings(), tmp_path)
    again, _ = prepare_dev_api(ApiSettings(), tmp_path)
    assert {entry.role for entry in first.keys} == set(DEV_ROLES)
    assert first.keys == again.keys  # stable across restarts
    stored = tmp_path / "api-dev-keys.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    keys = json.loads(stored.read_text())["keys"]
    for role in DEV_ROLES:
        assert keys[role] in banner
    assert "sf-express" in first.partner_secrets


def test_configured_keys_switch_dev_keys_off(tmp_path: Path) -> None:
    entry = ApiKeyEntry(name="a", role="agent", sha256=hash_key(new_key()))
    settings = ApiSettings(keys=[entry])
    prepared, banner = prepare_dev_api(settings, tmp_path)
    assert prepared.keys == settings.keys
    assert "from configuration" in banner
    assert not (tmp_path / "api-dev-keys.json").exists()


async def test_oversized_bodies_are_refused_unread(stack: Stack) -> None:
    response = await stack.http.post(
        "/v1/tickets",
        content=b"x" * (300 * 1024),
        headers={**stack.auth("backend"), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
