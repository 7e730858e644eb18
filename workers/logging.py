"""One JSON line per event on stdout, whoever logs it: structlog calls in our code and
stdlib records from temporalio, asyncpg and friends share the same renderer.

Log lines must stay free of personal data (names, phones, e-mails, IPs): bind ids, not
people.
"""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger
from temporalio import activity, workflow


def drop_during_replay(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog is passed through the workflow sandbox, so without this a workflow's log
    lines would be written again every time its history is replayed."""
    if workflow.in_workflow() and workflow.unsafe.is_replaying():
        raise structlog.DropEvent
    return event_dict


def core_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """The SDK core's structured fields (run id, task queue, ...) as fields of the line."""
    record = event_dict.get("_record")
    core = getattr(record, "temporal_log", None)
    if core is not None:
        for key, value in (core.fields or {}).items():
            event_dict.setdefault(key, value)
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(level: str | int = "INFO") -> None:
    """Idempotent: the CLI, the dev stack and tests may all call it."""
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            drop_during_replay,
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            *_shared_processors(),
            # The SDK's loggers put workflow/activity ids in `extra`; keep them as fields.
            structlog.stdlib.ExtraAdder(allow=("temporal_workflow", "temporal_activity")),
            core_fields,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False, default=str),
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(numeric)
    # httpx logs every request at INFO; the relay logs each delivery itself, with the
    # ticket and the row, so httpx keeps to warnings.
    logging.getLogger("httpx").setLevel(max(numeric, logging.WARNING))

    # The same details arrive as structured fields above; repeating them in the message
    # text would only make lines harder to search.
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
