"""The API's own settings: keys, partner secrets, where it listens, how long it waits.

`workers.settings.Settings` holds these under `api` (`TICKETFLOW_API__*`) and hands the
API what it needs as an `ApiConfig`; the API never reads the worker's settings itself.
`ConfigurationError` and the duration syntax live here, at the lower of the two layers,
so both raise and accept the same ones.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from workflows.policy import ServicePolicy

# A ticket queue whose oldest workflow task has waited longer than this is behind a herd:
# a person's input to a quiet ticket is then raised past the herd's (api.client,
# `TicketClient._person_acting`). Five seconds is a herd, not a busy hour: at concurrency
# 50 the bench's floor has every ticket acted on by people and their updates take up to
# 2.5 s (p99), where raising each input would put nobody ahead and cost each two history
# events; at 10:00:30 a herd's oldest task has waited for minutes.
RAISE_WHEN_BEHIND = timedelta(seconds=5)


class ConfigurationError(Exception):
    """Settings that cannot be used; the message is meant for the person who set them."""


# `backend`, `agent`, `operator`, `department:<name>` or `partner:<name>`.
API_ROLE = re.compile(
    r"^(backend|agent|operator|manager|knowledge|(department|partner):[a-z0-9][a-z0-9_.-]{0,63})$"
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> Any:
    """`"300"`, `"90s"`, `"5m"`, `"4h"`, `"3d"` as a timedelta: environment values are
    strings, and pydantic reads "15" as no duration. Anything else (a timedelta, a number,
    ISO 8601 such as `PT30S`) is returned unchanged for pydantic to read."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    return value


class ApiKeyEntry(BaseModel):
    """One API key as configuration holds it: never the key, only its SHA-256.

    `ticketflow keys create --role agent --name agent-console` prints a new key and the
    entry to add here.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")
    role: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("role")
    @classmethod
    def _known_role(cls, value: str) -> str:
        if not API_ROLE.match(value):
            raise ValueError(
                f"unknown role {value!r}; use backend, agent, operator, manager, knowledge, "
                "department:<name> or partner:<name>"
            )
        return value


class WorkspaceSettings(BaseModel):
    """The agents' workspace at /app (docs/workspace.md)."""

    # A signed-in browser stays signed in this long, then signs in again.
    session_ttl: timedelta = timedelta(hours=12)
    # Session cookies only over HTTPS. Requests that arrive over HTTPS (or through a proxy
    # in `forwarded_allow_ips` that says so) get them anyway; this forces it.
    secure_cookies: bool = False
    # Rows per queue page.
    page_size: int = Field(default=50, ge=10, le=500)
    # The interface's languages (a Babel catalogue each); the policy's `staff_locale` is
    # the default.
    locales: list[str] = Field(default_factory=lambda: ["zh-Hans", "zh-Hant", "en"])
    # A read of the queue serves every page that asks while nothing changed, for at most
    # this long (overdue and breaching soon move with the clock). 0s: no sharing.
    shared_reads_for: timedelta = timedelta(seconds=1)
    # Changes that reach an open page within this window are sent together.
    live_coalesce: timedelta = timedelta(milliseconds=100)
    # A comment on every idle stream this often, so proxies keep it open.
    live_heartbeat: timedelta = timedelta(seconds=15)
    # A viewer not heard from for this long has left (a browser that vanished).
    presence_ttl: timedelta = timedelta(seconds=45)
    # "Typing…" lasts this long after the last keystroke sent.
    typing_ttl: timedelta = timedelta(seconds=6)
    # The Temporal UI's workflows of the tickets' namespace, e.g.
    # https://temporal.example.com/namespaces/tickets/workflows: a ticket's page links to
    # its workflow's history there. `make dev` sets its own.
    temporal_ui_url: str | None = None

    @field_validator(
        "session_ttl",
        "shared_reads_for",
        "live_coalesce",
        "live_heartbeat",
        "presence_ttl",
        "typing_ttl",
        mode="before",
    )
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return parse_duration(value)


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # e.g. TICKETFLOW_API__KEYS='[{"name": "mail-gateway", "role": "backend", "sha256": "…"}]'
    keys: list[ApiKeyEntry] = Field(default_factory=list)
    keys_file: Path | None = Field(
        default=None, description="TOML or JSON file with [[keys]] entries, added to `keys`"
    )
    # HMAC-SHA256 signing secrets of the partners' callbacks, by partner name, e.g.
    # TICKETFLOW_API__PARTNER_SECRETS='{"sf-express": "…"}'.
    partner_secrets: dict[str, SecretStr] = Field(default_factory=dict)
    # A signed callback older (or further in the future) than this is refused.
    signature_tolerance: timedelta = timedelta(minutes=5)
    # The rolling window of GET /metrics (Prometheus).
    metrics_window: timedelta = timedelta(hours=24)
    # How long a request waits for Temporal before answering 503 with Retry-After.
    temporal_timeout: timedelta = timedelta(seconds=10)
    # While the ticket queue's oldest workflow task has waited longer than this (a 10:00
    # herd), a person's input to a ticket raises it past the herd (TicketClient); "off"
    # or empty never raises.
    raise_when_behind: timedelta | None = RAISE_WHEN_BEHIND
    # Proxies whose X-Forwarded-For names the customer's IP (uvicorn's forwarded_allow_ips).
    forwarded_allow_ips: str = "127.0.0.1"
    # Public URL for `ticketflow ticket ...` when the API is not on host:port (a proxy).
    public_url: str | None = None
    # Lets a lead review a week that is not over (`so_far`), e.g. to try the 5-Why flow
    # right after `make demo`; that week's Monday review then finds it done. `make dev`
    # turns it on; a production API leaves it off.
    open_week_reviews: bool = False
    workspace: WorkspaceSettings = Field(default_factory=WorkspaceSettings)

    @property
    def url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @field_validator("signature_tolerance", "temporal_timeout", "metrics_window", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        # Environment values are strings: "300", "90s" and "5m" mean what they say.
        return parse_duration(value)

    @field_validator("raise_when_behind", mode="before")
    @classmethod
    def _off_or_duration(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("", "off", "none"):
            return None
        return parse_duration(value)


class ApiConfig(BaseModel):
    """Everything the API process is started with: its own settings, and the two worker
    settings it must agree on (the task queue tickets run on, the policy they follow)."""

    model_config = ConfigDict(frozen=True)

    api: ApiSettings = Field(default_factory=ApiSettings)
    task_queue: str
    policy: ServicePolicy = Field(default_factory=ServicePolicy)
    # The worker's message templates, to show messages not delivered yet as they will be.
    templates_file: Path | None = None


__all__ = [
    "API_ROLE",
    "ApiConfig",
    "ApiKeyEntry",
    "ApiSettings",
    "ConfigurationError",
    "WorkspaceSettings",
    "parse_duration",
]
