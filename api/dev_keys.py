"""Ready-made API keys for `make dev`, one per role, so a developer can call the API at once.

Made once per data directory and kept in `<data_dir>/api-dev-keys.json` (mode 0600), so
they survive restarts and `make clean` forgets them. Used only when configuration names
no keys: a configured deployment never gets them.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from api.access import hash_key, new_key
from api.settings import ApiKeyEntry, ApiSettings

DEV_PARTNER = "sf-express"
DEV_DEPARTMENT = "tech"
DEV_ROLES = (
    "backend",
    "agent",
    "operator",
    "manager",
    "knowledge",
    f"department:{DEV_DEPARTMENT}",
    f"partner:{DEV_PARTNER}",
)
FILE_NAME = "api-dev-keys.json"


@dataclass(frozen=True)
class DevAccess:
    keys: dict[str, str]  # role -> key
    partner_secrets: dict[str, str]
    path: Path


def dev_key_name(role: str) -> str:
    return "dev-" + role.split(":")[-1]


def load_or_create(data_dir: Path) -> DevAccess:
    path = data_dir / FILE_NAME
    keys: dict[str, str] = {}
    partner_secrets: dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
        keys = dict(stored.get("keys", {}))
        partner_secrets = dict(stored.get("partner_secrets", {}))
    changed = False
    for role in DEV_ROLES:
        if role not in keys:
            keys[role] = new_key()
            changed = True
    if DEV_PARTNER not in partner_secrets:
        partner_secrets[DEV_PARTNER] = secrets.token_urlsafe(32)
        changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(
            json.dumps({"keys": keys, "partner_secrets": partner_secrets}, indent=2),
            encoding="utf-8",
        )
    return DevAccess(keys=keys, partner_secrets=partner_secrets, path=path)


def prepare_dev_api(api: ApiSettings, data_dir: Path) -> tuple[ApiSettings, str]:
    """The API settings the dev API runs with, and the lines `make dev` prints about them.
    `data_dir` is the dev stack's: the keys are kept there."""
    # A trial stack: its demo's tickets are all this week's, so let a lead review it.
    api = api.model_copy(update={"open_week_reviews": True})
    if api.keys or api.keys_file:
        return api, "  API keys        from configuration (TICKETFLOW_API__KEYS / KEYS_FILE)"
    access = load_or_create(data_dir.resolve())
    entries = [
        ApiKeyEntry(name=dev_key_name(role), role=role, sha256=hash_key(key))
        for role, key in access.keys.items()
    ]
    secrets_ = {
        **{name: SecretStr(value) for name, value in access.partner_secrets.items()},
        **api.partner_secrets,
    }
    updated = api.model_copy(update={"keys": entries, "partner_secrets": secrets_})
    return updated, banner(api, access)


def banner(api: ApiSettings, access: DevAccess) -> str:
    width = max(len(role) for role in access.keys)
    lines = [f"  API keys        for local use only (kept in {access.path}):"]
    lines += [f"    {role:<{width}}  {key}" for role, key in access.keys.items()]
    lines += [
        f"    {'signing secret':<{width}}  {access.partner_secrets[DEV_PARTNER]}  "
        f"(callbacks of partner:{DEV_PARTNER})",
        f"  Workspace       {api.url}/app/  (sign in with the agent, operator or "
        f"department:{DEV_DEPARTMENT} key)",
        f"  API docs        {api.url}/docs",
        f'  Try             curl -H "Authorization: Bearer {access.keys["agent"]}" '
        f"{api.url}/v1/tickets",
        f"                  TICKETFLOW_API_KEY={access.keys['agent']} .venv/bin/ticketflow ticket list",
    ]
    return "\n".join(lines)
