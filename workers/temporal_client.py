"""The one way this project opens a Temporal client.

The connection (address, namespace, API key, TLS, gRPC metadata) comes from the SDK's
envconfig, so `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`,
`TEMPORAL_TLS_*`, `TEMPORAL_PROFILE` and the TOML profiles behave exactly as they do for
the `temporal` CLI an operator already uses against the same cluster.
"""

from __future__ import annotations

import gc
import logging
from functools import cache
from typing import Any

from temporalio.client import Client
from temporalio.envconfig import ClientConfig
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from workers.codec import DEV_KEYS_FILE, CodecSettings, StaticKeys, data_converter
from workers.settings import ConfigurationError, Settings
from workers.tracing import tracing_interceptors

FALLBACK_ADDRESS = "localhost:7233"  # the CLI's default too


def default_address() -> str:
    """Where `make dev`'s server listens: the port in temporal-dev.yml, the one setting
    that moves the dev stack, `make demo`, the CLI and every client together."""
    from workers.devspec import LOCAL_IP, DevFileError, load_dev_spec

    try:
        return f"{LOCAL_IP}:{load_dev_spec().port}"
    except (DevFileError, OSError):  # an installed package without the file
        return FALLBACK_ADDRESS


# The SDK core's own lines (Rust) arrive on this stdlib logger, and so in the one JSON log
# (workers/logging.py), instead of as coloured text on stderr.
CORE_LOGGER = "temporalio.core"
_CORE_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARN"}


@cache
def process_runtime(log_level: str, prometheus_bind: str | None) -> Runtime:
    """The SDK runtime of this process: core logs forwarded, Prometheus metrics if asked.
    Cached: each runtime owns threads (and a metrics server), one per process is enough."""
    forwarding = LogForwardingConfig(
        logger=logging.getLogger(CORE_LOGGER),
        # The fields travel as structured data (workers/logging.py), not in the text.
        append_log_fields_to_message=False,
        prepend_target_on_message=False,
    )
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(
                    core_level=_CORE_LEVELS.get(log_level, "ERROR"), other_level="ERROR"
                ),
                forwarding=forwarding,
            ),
            metrics=PrometheusConfig(bind_address=prometheus_bind) if prometheus_bind else None,
        )
    )


def release_runtime() -> None:
    """Drop this process's SDK runtime, and with it the core's threads, while the
    interpreter is still whole; every command calls this when its work is done.

    Left to interpreter shutdown, one of those threads can call into Python after
    finalisation began, and the process aborts after its work was done ("Fatal Python
    error: PyGILState_Release ... finalizing", exit 134; temporalio/sdk-python#300):
    seen in about 1 run in 10 of `ticketflow register-search-attributes`. Clients made
    by `connect_temporal` keep their runtime alive for as long as they are used."""
    process_runtime.cache_clear()
    # A finished command's client may sit in a reference cycle: collect it now, so its
    # runtime goes here and not during finalisation.
    gc.collect()


def connect_options(settings: Settings) -> dict[str, Any]:
    """`Client.connect` keyword arguments from envconfig, before the project's own."""
    try:
        options: dict[str, Any] = dict(
            ClientConfig.load_client_connect_config(profile=settings.temporal_profile)
        )
    except Exception as error:  # the bridge raises plain RuntimeErrors for bad files
        raise ConfigurationError(f"Temporal client configuration: {error}") from None
    if not options.get("target_host"):
        options["target_host"] = default_address()
    return options


async def connect_temporal(
    settings: Settings,
    *,
    target_host: str | None = None,
    namespace: str | None = None,
) -> Client:
    """Connect with the pydantic data converter (every payload is a pydantic model).

    `target_host` is for the dev stack's own server: it ignores envconfig entirely, since
    an API key or TLS settings meant for another cluster would break a local plaintext one.
    """
    if target_host is not None:
        options: dict[str, Any] = {"target_host": target_host, "namespace": namespace or "default"}
    else:
        options = connect_options(settings)
        if namespace is not None:
            options["namespace"] = namespace
    options["runtime"] = process_runtime(settings.log_level, settings.prometheus_bind)
    options["interceptors"] = tracing_interceptors(settings.otel_endpoint)
    return await Client.connect(**options, data_converter=data_converter(codec_keys(settings)))


def codec_keys(settings: Settings) -> StaticKeys | None:
    """The keys payloads are sealed with; None only where plaintext was asked for.

    With no keys configured, a process run from a `make dev` checkout (or with
    TICKETFLOW_DATA_DIR naming its data directory) uses the dev stack's own key, so the
    demo, the CLI and a script reach the dev stack's tickets without being told more.
    """
    keys = settings.codec.provider()
    if keys is not None or settings.codec.plaintext:
        return keys
    dev_file = settings.data_dir / DEV_KEYS_FILE
    if dev_file.exists():
        return CodecSettings(keys_file=dev_file).provider()
    raise ConfigurationError(
        f"no payload encryption keys: against `make dev`, run from its checkout or set "
        f"TICKETFLOW_DATA_DIR to its data directory (the key is {DEV_KEYS_FILE} there); "
        "against a cluster of your own, set TICKETFLOW_CODEC__KEYS_FILE (or __KEYS) to the "
        "keys its workers use (`ticketflow codec new-key` makes one). "
        "TICKETFLOW_CODEC__PLAINTEXT=true is only for a cluster whose workers also run "
        "without keys"
    )
