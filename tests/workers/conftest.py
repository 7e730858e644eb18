"""Logging hygiene for the runtime-wiring tests; the Temporal servers are in tests/conftest.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog
from temporalio import activity, workflow


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """`configure_logging` (called by the CLI too) changes process-wide state: put it back,
    or a handler bound to one test's captured stdout would outlive that test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    on_message = (
        workflow.logger.workflow_info_on_message,
        activity.logger.activity_info_on_message,
    )
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
    workflow.logger.workflow_info_on_message, activity.logger.activity_info_on_message = on_message
