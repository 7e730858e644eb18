"""The README's "How it is built" table names files and folders that exist.

Its first column names paths from the root, and bare names beside them in the same folder
(`` `workers/codec.py`, `codec_server.py` ``); words that are not paths (`AUTO_UPGRADING`)
are left alone.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATH = re.compile(r"^[\w./-]+(\.(py|toml|yml|md|sql|json)|/)$")


def built_table() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## How it is built", 1)[1]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("## "):
            break
        if line.startswith("| `"):
            rows.append(line.split("|")[1])
    return rows


def named_paths(cell: str) -> list[str]:
    paths: list[str] = []
    folder = ""
    for name in re.findall(r"`([^`]+)`", cell):
        if not PATH.match(name):
            continue
        if "/" in name.rstrip("/"):
            # A path from the root: its folder serves the bare names after it.
            folder = name if name.endswith("/") else name.rsplit("/", 1)[0] + "/"
            paths.append(name)
        else:
            paths.append(folder + name)
    return paths


def test_every_path_in_the_table_exists() -> None:
    rows = built_table()
    assert rows, "the README has no 'How it is built' table"
    missing = [path for cell in rows for path in named_paths(cell) if not (ROOT / path).exists()]
    assert not missing, f"the README's 'How it is built' table names what is not there: {missing}"
