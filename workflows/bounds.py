"""Bounds on the numbers of a configuration, checked when a process loads it.

A field says its bounds next to its type, `Annotated[timedelta, Bounds(low=HOUR)]`, and
`out_of_bounds(model)` lists every value outside them, each with the field's dotted
name. Pydantic ignores this marker when it decodes a model: the ticket's policy is
decoded again on every replay from what its workflow recorded, and a bound added today
must never make a running ticket undecodable. So the bounds hold for what a process
loads (workers.settings), and recorded tickets keep the policy they were opened under.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

Number = timedelta | int | float


@dataclass(frozen=True)
class Bounds:
    """Inclusive bounds of a number or duration; of a list's length for a list."""

    low: Number | None = None
    high: Number | None = None


def shown(value: Number) -> str:
    """A bound as a person writes it in a policy file: `90s`, `6h`, `30d`, `10`."""
    if not isinstance(value, timedelta):
        return f"{value:g}" if isinstance(value, float) else str(value)
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds}s"


def _problem(name: str, value: Any, bounds: Bounds) -> str | None:
    # A field's value has its bounds' type (pydantic made sure): int, float or timedelta.
    measured: Any = len(value) if isinstance(value, list | dict) else value
    what = " entries" if isinstance(value, list | dict) else ""
    if bounds.low is not None and measured < bounds.low:
        return f"{name}: must be at least {shown(bounds.low)}{what}, got {shown(measured)}"
    if bounds.high is not None and measured > bounds.high:
        return f"{name}: must be at most {shown(bounds.high)}{what}, got {shown(measured)}"
    return None


def out_of_bounds(model: BaseModel, prefix: str = "") -> list[str]:
    """Every value of `model` (nested models, lists and mappings of them included)
    outside the Bounds its field declares, as `name.of.field: must be ...`."""
    problems: list[str] = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        where = f"{prefix}{name}"
        for bounds in (m for m in field.metadata if isinstance(m, Bounds)):
            problem = _problem(where, value, bounds)
            if problem is not None:
                problems.append(problem)
        if isinstance(value, BaseModel):
            problems += out_of_bounds(value, f"{where}.")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    problems += out_of_bounds(item, f"{where}.{index}.")
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, BaseModel):
                    problems += out_of_bounds(item, f"{where}.{getattr(key, 'value', key)}.")
    return problems
