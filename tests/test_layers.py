"""Imports flow one way: workflows <- activities <- stores <- api <- cli <- workers.

Workflow code runs in Temporal's sandbox and must not drag in side effects; activities
must not know who calls them; the stores and readers the API uses (`stores`) build on the
activities' pool and outbox but are never run by a worker's activity; the API is started by the workers' CLI and dev stack, never
the other way round; the terminal commands (`cli`) call the API over HTTP and speak its
models, and `workers.cli` wires them into `ticketflow`. Every import counts, wherever it
is written: module level, inside a function, under `if TYPE_CHECKING:`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> the packages it must never import
FORBIDDEN: dict[str, frozenset[str]] = {
    "workflows": frozenset({"activities", "stores", "api", "cli", "workers", "bench"}),
    "activities": frozenset({"stores", "api", "cli", "workers", "bench"}),
    "stores": frozenset({"api", "cli", "workers", "bench"}),
    "api": frozenset({"cli", "workers", "bench"}),
    "cli": frozenset({"workers", "bench"}),
    "workers": frozenset({"bench"}),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in the file, at any depth; relative imports are
    resolved to the absolute module they name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    # The package a relative import starts from: the file's directory, as module parts.
    here = list(path.relative_to(ROOT).parent.parts)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.lineno, node.module or ""))
            else:
                base = here[: len(here) - (node.level - 1)]
                found.append((node.lineno, ".".join([*base, *filter(None, [node.module])])))
    return found


def violations(package: str) -> list[str]:
    forbidden = FORBIDDEN[package]
    problems = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imported_modules(path):
            if module.partition(".")[0] in forbidden:
                problems.append(f"{path.relative_to(ROOT)}:{line} -> {module}")
    return problems


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_layers_below_it(package: str) -> None:
    assert (ROOT / package / "__init__.py").exists()
    problems = violations(package)
    forbidden = ", ".join(sorted(FORBIDDEN[package]))
    assert not problems, f"{package} must not import {forbidden}:\n" + "\n".join(problems)
