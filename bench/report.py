"""The table a run prints, as text for the terminal and Markdown for docs/benchmarks.md."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    part: str
    measure: str
    figure: str
    target: str = ""
    met: bool | None = None  # None: a figure without a target

    @property
    def verdict(self) -> str:
        if self.met is None:
            return ""
        return "met" if self.met else "NOT MET"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def add(
        self, part: str, measure: str, figure: str, target: str = "", met: bool | None = None
    ) -> None:
        self.rows.append(Row(part, measure, figure, target, met))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def ordered(self) -> list[Row]:
        """By part number (parts run in the order their servers allow), each part's
        rows as added."""

        def number(row: Row) -> float:
            first = row.part.split(" ", 1)[0]
            return int(first) if first.isdigit() else float("inf")

        return sorted(self.rows, key=number)

    def text(self) -> str:
        headers = ("part", "measure", "figure", "target", "")
        table = [
            headers,
            *((r.part, r.measure, r.figure, r.target, r.verdict) for r in self.ordered()),
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
        lines = []
        for index, row in enumerate(table):
            lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
            if index == 0:
                lines.append("  ".join("-" * width for width in widths))
        if self.notes:
            lines.append("")
            lines.extend(f"* {note}" for note in self.notes)
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [
            "| part | measure | figure | target | |",
            "| --- | --- | --- | --- | --- |",
        ]
        for row in self.ordered():
            cells = (row.part, row.measure, row.figure, row.target, row.verdict)
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        if self.notes:
            lines.append("")
            lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines)

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "facts": self.facts,
            "rows": [asdict(row) | {"verdict": row.verdict} for row in self.rows],
            "notes": self.notes,
        }
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")


def ms(milliseconds: float) -> str:
    return f"{milliseconds:.1f} ms"


def mib(value: float) -> str:
    return f"{value:,.0f} MiB"


def kib(value_bytes: int) -> str:
    return f"{value_bytes / 1024:,.1f} KiB"
