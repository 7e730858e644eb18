"""Output for people and scripts: JSON as the API answered it, label-value tables and
columns that line up on a terminal (CJK characters take two columns), instants in the
policy's zone."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo


def dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def table(rows: Sequence[tuple[str, Any]]) -> str:
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {_cell(value)}".rstrip() for label, value in rows)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def when(instant: str | None, zone: ZoneInfo) -> str | None:
    """An instant of the API (UTC) as people here read it: in the policy's zone, with the
    offset, so nobody converts from UTC in their head."""
    if instant is None:
        return None
    local = datetime.fromisoformat(instant).astimezone(zone)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M:%S} {offset[:3]}:{offset[3:]}"


def excerpt(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _width(text: str) -> int:
    """Columns on a terminal: 故障-提現 takes two per character, not one."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def columns(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(h), *(_width(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(_pad(h.upper(), w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(_pad(c, w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"
