"""Typed settings of the worker, the dev stack and the API: everything but the Temporal
connection, which comes from the SDK's envconfig like the `temporal` CLI's does.

Precedence, lowest first: ServicePolicy defaults < policy file < environment
(`TICKETFLOW_*`, nested with `__`, e.g. `TICKETFLOW_POLICY__FIRST_RESPONSE__LIVE_VIP=15`).
"""

from __future__ import annotations

import json
import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from workflows.policy import ServicePolicy
from workflows.vocabulary import Priority

ENV_PREFIX = "TICKETFLOW_"


class ConfigurationError(Exception):
    """Settings that cannot be used; the message is meant for the person who set them."""


# `backend`, `agent`, `operator`, `department:<name>` or `partner:<name>`.
API_ROLE = re.compile(r"^(backend|agent|operator|(department|partner):[a-z0-9][a-z0-9_.-]{0,63})$")


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
                f"unknown role {value!r}; use backend, agent, operator, "
                "department:<name> or partner:<name>"
            )
        return value


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
    # How long a request waits for Temporal before answering 503 with Retry-After.
    temporal_timeout: timedelta = timedelta(seconds=10)
    # Proxies whose X-Forwarded-For names the customer's IP (uvicorn's forwarded_allow_ips).
    forwarded_allow_ips: str = "127.0.0.1"
    # Public URL for `ticketflow ticket ...` when the API is not on host:port (a proxy).
    public_url: str | None = None

    @property
    def url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @field_validator("signature_tolerance", "temporal_timeout", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        # Environment values are strings: "300", "90s" and "5m" mean what they say.
        return _duration(value)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="ignore",
        validate_by_name=True,
    )

    task_queue: str = "tickets"
    # `DATABASE_URL` is what hosting platforms and docker-compose files conventionally set.
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices(f"{ENV_PREFIX}DATABASE_URL", "DATABASE_URL", "database_url"),
        description="PostgreSQL URL; None starts an embedded server under data_dir.",
    )
    data_dir: Path = Path(".data")
    policy_file: Path | None = None
    policy: ServicePolicy = Field(default_factory=ServicePolicy)
    api: ApiSettings = Field(default_factory=ApiSettings)
    log_level: str = "INFO"
    temporal_profile: str | None = None
    prometheus_bind: str | None = Field(
        default=None, description="host:port for the SDK's Prometheus endpoint, e.g. 0.0.0.0:9464"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win; the policy source sees what init and env said about
        # `policy_file` through `current_state`.
        return (init_settings, env_settings, _PolicyBaseSource(settings_cls))

    @field_validator("policy", mode="before")
    @classmethod
    def _prepare_policy(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return _normalise_policy_input(value)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("log_level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level


class _PolicyBaseSource(PydanticBaseSettingsSource):
    """The policy every override is merged onto: defaults, then the policy file.

    Starting from the full default policy (rather than nothing) lets a file or a
    variable change one SLA entry without restating the other three.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ builds the whole contribution

    def __call__(self) -> dict[str, Any]:
        base: dict[str, Any] = ServicePolicy().model_dump(mode="json")
        path = self.current_state.get("policy_file")
        if path:
            _deep_merge(base, read_policy_file(Path(path)))
        return {"policy": base}


def read_policy_file(path: Path) -> dict[str, Any]:
    """A ServicePolicy (possibly partial) from TOML or JSON, chosen by extension."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigurationError(f"policy file {path}: {error.strerror or error}") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        elif path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        else:
            raise ConfigurationError(f"policy file {path}: expected a .toml or .json file")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigurationError(f"policy file {path}: {error}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"policy file {path}: expected a table/object at the top")
    return data


def load_settings(**overrides: Any) -> Settings:
    """Settings from defaults, policy file and environment, or a ConfigurationError."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigurationError(_describe(error)) from None


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "settings"
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}")
    return "invalid settings: " + "; ".join(problems)


# ------------------------------------------------------------- input shaping

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def _normalise_policy_input(data: dict[str, Any]) -> dict[str, Any]:
    data = _coerce_durations(ServicePolicy, data)
    sla = data.get("sla")
    if isinstance(sla, dict):
        # Environment variable names arrive lower-cased, so `..._SLA__E__WITHIN` says "e".
        # Merged in arrival order: the variable comes after the default entry it refines.
        by_upper = {p.value.upper(): p.value for p in Priority}
        merged: dict[str, Any] = {}
        for key, value in sla.items():
            canonical = by_upper.get(str(key).upper(), str(key))
            if isinstance(value, dict) and isinstance(merged.get(canonical), dict):
                _deep_merge(merged[canonical], value)
            else:
                merged[canonical] = dict(value) if isinstance(value, dict) else value
        data["sla"] = merged
    zone = data.get("time_zone")
    if isinstance(zone, str):
        # ServicePolicy's own check lets ZoneInfo's KeyError escape pydantic; say it plainly.
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {zone!r}; use an IANA name such as 'Asia/Shanghai'"
            ) from None
    return data


def _coerce_durations(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """Accept `15`, `"15"`, `"90s"`, `"30m"`, `"4h"`, `"3d"` wherever the policy wants a
    timedelta: environment values are strings and pydantic reads "15" as no duration.
    ISO 8601 (`PT30S`) still passes through to pydantic unchanged."""
    result = dict(data)
    for name, field in model.model_fields.items():
        if name not in result:
            continue
        value = result[name]
        annotation = field.annotation
        if annotation is timedelta:
            result[name] = _duration(value)
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if isinstance(value, dict):
                result[name] = _coerce_durations(annotation, value)
        elif get_origin(annotation) is dict and isinstance(value, dict):
            item_type = get_args(annotation)[1]
            if isinstance(item_type, type) and issubclass(item_type, BaseModel):
                result[name] = {
                    key: _coerce_durations(item_type, item) if isinstance(item, dict) else item
                    for key, item in value.items()
                }
    return result


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    return value


def _deep_merge(target: dict[str, Any], overlay: dict[str, Any]) -> None:
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = value


__all__ = [
    "ApiKeyEntry",
    "ApiSettings",
    "ConfigurationError",
    "Settings",
    "load_settings",
    "read_policy_file",
]
