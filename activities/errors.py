"""Failures an activity must not retry."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

BAD_DATA: str = "BadData"


def bad_data(message: str) -> ApplicationError:
    """Input no retry can fix (wrong ticket id, unknown department): fail fast so the
    workflow sees it at once instead of after the retry policy gives up."""
    return ApplicationError(message, type=BAD_DATA, non_retryable=True)
