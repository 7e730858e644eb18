"""The surge check's count: tickets opened per category and topic, now and before.

What the `count_openings` activity answers (activities/indicators.py) and the surge
workflows decide on (workflows/surge.py); apart from the workflows so that the activity
stub (workflows/activity_stubs.py) can name them without importing a workflow module.
"""

from __future__ import annotations

from pydantic import Field

from workflows.policy import ServicePolicy, is_surge
from workflows.primitives import Contract


class Openings(Contract):
    """Tickets opened in a category or topic: the last 24 h and its two baselines."""

    dimension: str  # "category" or "topic"
    value: str
    last_24h: int
    day_before: int
    week_before: int
    sample: list[str] = Field(default_factory=list)
    # A category's topics, counted within it (none before the one-per-problem patch).
    parts: list[Openings] = Field(default_factory=list)

    def rising(self, policy: ServicePolicy) -> bool:
        """Up against both baselines."""
        return is_surge(policy, self.last_24h, self.day_before) and is_surge(
            policy, self.last_24h, self.week_before
        )

    def without(self, parts: list[Openings]) -> Openings:
        """These counts less `parts`'."""
        return self.model_copy(
            update={
                "last_24h": self.last_24h - sum(p.last_24h for p in parts),
                "day_before": self.day_before - sum(p.day_before for p in parts),
                "week_before": self.week_before - sum(p.week_before for p in parts),
                "parts": [],
            }
        )


class OpeningsRequest(Contract):
    sample: int
