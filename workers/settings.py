"""Typed settings of the worker, the dev stack and the API: everything but the Temporal
connection, which comes from the SDK's envconfig like the `temporal` CLI's does. The API's
part (`api`, `ConfigurationError`, the duration syntax) is defined in `api.settings`.

Precedence, lowest first: ServicePolicy defaults < policy file < environment
(`TICKETFLOW_*`, nested with `__`, e.g. `TICKETFLOW_POLICY__FIRST_RESPONSE__LIVE_VIP=15`).
"""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import WorkerDeploymentConfig

from activities.calendars import with_public_holidays
from activities.delivery import DeliveryConfig
from api.settings import ApiConfig, ApiSettings, ConfigurationError, parse_duration
from workers.codec import CodecSettings
from workflows.bounds import out_of_bounds
from workflows.policy import ServicePolicy, unknown_departments
from workflows.vocabulary import Priority

ENV_PREFIX = "TICKETFLOW_"
GRACEFUL_SHUTDOWN = timedelta(seconds=20)
# Workflows a worker keeps in memory (see Settings.sticky_cache): two and a half times the
# SDK's 1,000, because a 10:00 herd larger than the cache took twice as long
# (docs/benchmarks.md, part 9); as many as keep a worker with 10,000 open tickets within
# 1 GiB (983 MiB measured, about 0.24 MiB per cached ticket on top of 370: part 4).
STICKY_CACHE = 2500
# How long a cached ticket's workflow task may wait on its worker's own (sticky) queue
# before the server schedules it on the shared queue, where a worker rebuilds the ticket
# from its history. It decides who waits when a 10:00 herd queues (docs/benchmarks.md,
# "The herd's limit, profiled"): with the SDK's 10 s most of the herd times out into the
# shared queue, so an agent's note or a reply to another ticket at 10:00:30 is served at
# once (0.1 / 0.2 s), and a new ticket passes the herd there by its priority
# (TicketClient.settle); with 60 s the herd finishes sooner (last 47 s instead of 60) but
# the note and the reply wait behind it on the sticky queue (17 s). It is also how long a
# killed worker's tickets wait before another worker takes them (a worker that stops
# cleanly hands them over).
STICKY_WAIT = timedelta(seconds=10)
# Workflow tasks a ticket worker runs at once (the SDK's max_concurrent_workflow_tasks,
# whose default of 100 is kept here): see Settings.workflow_task_slots.
WORKFLOW_TASK_SLOTS = 100
# Whether tickets run in the SDK's workflow sandbox: see Settings.workflow_sandbox.
WORKFLOW_SANDBOX = False


class DeploymentSettings(BaseModel):
    """Temporal worker versioning (docs/upgrades.md). Without a build id the worker is
    unversioned, as on a cluster that never enabled it."""

    name: str = "ticketflow"
    build_id: str | None = Field(default=None, min_length=1, max_length=255)
    # Tickets: pinned (finish on the build that opened them; old builds drain) or
    # auto_upgrade (move to each new build; every change then needs workflow.patched).
    ticket_behavior: Literal["pinned", "auto_upgrade"] = "pinned"

    def worker_config(self) -> WorkerDeploymentConfig | None:
        if self.build_id is None:
            return None
        behavior = VersioningBehavior[self.ticket_behavior.upper()]
        return WorkerDeploymentConfig(
            version=WorkerDeploymentVersion(deployment_name=self.name, build_id=self.build_id),
            use_worker_versioning=True,
            default_versioning_behavior=behavior,
        )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        # `null` turns an optional setting off (TICKETFLOW_POLICY__PRIORITIES__QUIET=null).
        env_parse_none_str="null",
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
    # Without DATABASE_URL, only `ticketflow dev` starts an embedded PostgreSQL by itself: a
    # worker or migration elsewhere would quietly write where the API does not read.
    embedded_database: bool = False
    policy_file: Path | None = None
    policy: ServicePolicy = Field(default_factory=ServicePolicy)
    api: ApiSettings = Field(default_factory=ApiSettings)
    # Customer-facing wording: an operator's templates laid over the shipped ones
    # (activities/templates/messages.toml shows the shape).
    templates_file: Path | None = None
    # Where every message and hand-off is delivered (activities.delivery).
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    # `make dev` prints and keeps every delivery on a local receiver unless deliveries are
    # configured; this is where it listens.
    dev_receiver_port: int = Field(default=8010, ge=1, le=65535)
    log_level: str = "INFO"
    temporal_profile: str | None = None
    deployment: DeploymentSettings = Field(default_factory=DeploymentSettings)
    # Payload encryption keys and the codec server (workers/codec.py).
    codec: CodecSettings = Field(default_factory=CodecSettings)
    otel_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP traces endpoint, e.g. http://collector:4318/v1/traces (needs the otel extra)",
    )
    prometheus_bind: str | None = Field(
        default=None, description="host:port for the SDK's Prometheus endpoint, e.g. 0.0.0.0:9464"
    )
    # Workflows the worker keeps in memory between their tasks (the SDK's
    # max_cached_workflows). One it does not keep is rebuilt from its history at its next
    # task: when thousands of tickets wake at 10:00, most of a herd larger than this is
    # rebuilt. docs/scaling.md gives its memory per ticket.
    sticky_cache: int = Field(default=STICKY_CACHE, ge=0)
    # The SDK's sticky_queue_schedule_to_start_timeout: see STICKY_WAIT.
    sticky_wait: timedelta = Field(default=STICKY_WAIT, gt=timedelta(0))
    # Workflow tasks the ticket lane runs at once. Every task a worker holds shares its one
    # event loop, so in a herd a person's task, taken first by its priority, still waits
    # behind the others the worker holds; fewer leaves the order to the server.
    workflow_task_slots: int = Field(default=WORKFLOW_TASK_SLOTS, ge=2)
    # Run the ticket lane (tickets, surge checks, reviews) in the SDK's workflow sandbox.
    # Off by default: it cost a worker about a third of its CPU per lifecycle and a third
    # of its memory per cached ticket (docs/benchmarks.md, "The sandbox: measured, then
    # turned off"), while what it refuses at run time is refused before the code runs
    # (ruff's banned-api over workflows/ and tests/test_layers.py), and the test workers,
    # every replay and `ticketflow dev` run in it. workflows/sandbox.py.
    workflow_sandbox: bool = WORKFLOW_SANDBOX
    # How long a stopping worker lets its activities finish before cancelling them: long
    # enough for an in-flight PostgreSQL write; activities are idempotent, so one cut off
    # later is retried by the next worker. The outbox relay does not wait for it.
    graceful_shutdown: timedelta = GRACEFUL_SHUTDOWN
    # How long past `graceful_shutdown` a stopping process may take to end (pools closed,
    # the SDK's runtime dropped); a process still there then prints every thread's stack,
    # which says what it waits for, and exits 1 (workers.lifecycle.stop_on_signals).
    exit_grace: timedelta = timedelta(seconds=30)

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

    @model_validator(mode="after")
    def _holidays_resolved(self) -> Settings:
        # The business calendar's public holidays become plain dates here, once, so the
        # tickets this process starts carry them (and never call the library in a replay).
        # Bounds are checked here, where a policy is loaded, and not when a ticket's
        # recorded policy is decoded again (workflows.bounds).
        problems = out_of_bounds(self.policy, "policy.")
        if problems:
            raise ValueError("; ".join(problems))
        self.policy = with_public_holidays(self.policy, datetime.now(UTC).date())
        unknown = unknown_departments(self.policy)
        if unknown:
            raise ValueError(f"policy names departments without an address: {unknown}")
        return self

    @field_validator("graceful_shutdown", "exit_grace", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return parse_duration(value)

    @property
    def stop_bound(self) -> timedelta:
        """From a stop request to the process's end, at the most."""
        return self.graceful_shutdown + self.exit_grace

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("log_level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    def api_config(self, api: ApiSettings | None = None) -> ApiConfig:
        """What the API process is started with: these API settings (or `api`), and the
        task queue and policy of the tickets it serves."""
        return ApiConfig(
            api=self.api if api is None else api,
            task_queue=self.task_queue,
            policy=self.policy,
            templates_file=self.templates_file,
        )


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
        where = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        # A check of the whole (a model validator) names its fields in its message.
        problems.append(f"{where}: {message}" if where else message)
    return "invalid settings: " + "; ".join(problems)


# ------------------------------------------------------------- input shaping


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
            result[name] = parse_duration(value)
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


# Tables a file gives whole: a week that lists tue and sat works those days only, not
# those on top of the default Monday to Friday.
_REPLACED = frozenset({("business_hours", "week")})


def _deep_merge(
    target: dict[str, Any], overlay: dict[str, Any], path: tuple[str, ...] = ()
) -> None:
    for key, value in overlay.items():
        where = (*path, key)
        if isinstance(value, dict) and isinstance(target.get(key), dict) and where not in _REPLACED:
            _deep_merge(target[key], value, where)
        else:
            target[key] = value


__all__ = [
    "ApiSettings",
    "ConfigurationError",
    "Settings",
    "load_settings",
    "read_policy_file",
]
