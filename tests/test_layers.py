"""Imports flow one way: workflows <- activities <- stores <- api <- cli <- workers.

Workflow code must not drag in side effects (workers run it outside Temporal's sandbox:
pyproject.toml's banned-api and the built-ins below keep it deterministic); activities
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


# Built-ins workflow code must not call: ruff's banned-api (pyproject.toml) cannot name
# them, and workers run workflows outside the SDK's sandbox, which would refuse them.
WORKFLOW_BUILTINS = frozenset({"open", "input", "breakpoint", "print", "exec", "eval", "compile"})


def builtin_calls(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        (node.lineno, node.func.id)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in WORKFLOW_BUILTINS
    ]


def test_workflow_code_calls_no_io_builtins() -> None:
    problems = [
        f"{path.relative_to(ROOT)}:{line} -> {name}()"
        for path in sorted((ROOT / "workflows").rglob("*.py"))
        for line, name in builtin_calls(path)
    ]
    assert not problems, "workflow code does no I/O:\n" + "\n".join(problems)


def test_the_builtin_check_sees_a_call(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f() -> str:\n    return open('x').read()\n", encoding="utf-8")
    assert builtin_calls(probe) == [(2, "open")]
