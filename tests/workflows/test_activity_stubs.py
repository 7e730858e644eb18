"""Workflows call activities through typed stubs (workflows/activity_stubs.py); the worker
registers the implementations under the same names. Nothing at run time compares the
two, so this does: same name, same argument and result types, for every stub."""

from __future__ import annotations

import ast
import inspect
import typing
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from temporalio import activity
from temporalio.common import RetryPolicy

from activities import all_activities
from activities.database import Pool
from activities.delivery import OutboxRelay
from workflows import activity_stubs
from workflows.contracts import Handoff
from workflows.policy import ServicePolicy

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


def _name(fn: Callable[..., Any]) -> str:
    name = activity._Definition.must_from_callable(fn).name  # what the worker registers
    assert name is not None
    return name


def registered(models: Path) -> dict[str, Callable[..., Any]]:
    """The implementations a worker registers, by name, built as workers.main.build_worker
    builds them (constructors only keep their dependencies: a stand-in pool will do)."""
    pool = cast(Pool, object())
    found = [*all_activities(pool, ServicePolicy(), models), OutboxRelay.deliver_due]
    return {_name(fn): fn for fn in found}


def stubs() -> list[Callable[..., Any]]:
    return [
        fn
        for _, fn in inspect.getmembers(activity_stubs, inspect.iscoroutinefunction)
        if activity._Definition.from_callable(fn) is not None
    ]


def signature(fn: Callable[..., Any]) -> tuple[list[object], object]:
    """Argument types in order (no `self`) and the result type, with names resolved."""
    hints = typing.get_type_hints(fn)
    parameters = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
    return [hints.get(p.name) for p in parameters], hints.get("return")


def drift(stub: Callable[..., Any], implementation: Callable[..., Any]) -> list[str]:
    problems = []
    if _name(stub) != _name(implementation):
        problems.append(f"name {_name(stub)} != {_name(implementation)}")
    (stub_args, stub_result), (impl_args, impl_result) = signature(stub), signature(implementation)
    if stub_args != impl_args:
        problems.append(f"arguments {stub_args} != {impl_args}")
    if stub_result != impl_result:
        problems.append(f"result {stub_result} != {impl_result}")
    return problems


def test_every_stub_matches_its_registered_implementation(tmp_path: Path) -> None:
    implementations = registered(tmp_path)
    checked = stubs()
    assert len(checked) >= 9
    for stub in checked:
        implementation = implementations.get(_name(stub))
        assert implementation is not None, f"no worker registers {_name(stub)}"
        assert not drift(stub, implementation), (_name(stub), drift(stub, implementation))


# Registered for runs of older builds, called by no workflow code of this one
# (docs/upgrades.md): no stub, as nothing here schedules them.
UNCALLED = {
    "notify_customer",
    "open_work_order",
    "remind_department",
    "start_risk_control",
    "convene_upgrade_review",
    "contact_partner",
    "alert_supervisor",
}


def test_every_activity_the_worker_runs_has_its_stub_but_the_uncalled_legacy_ones(
    tmp_path: Path,
) -> None:
    without_stub = set(registered(tmp_path)) - {_name(stub) for stub in stubs()}
    assert without_stub == UNCALLED


def test_a_drifted_implementation_is_caught(tmp_path: Path) -> None:
    @activity.defn(name=activity_stubs.send_handoffs.__name__)
    async def send_handoffs(handoff: Handoff) -> None:  # one hand-off, not a batch
        raise NotImplementedError

    @activity.defn(name=activity_stubs.deliver_due.__name__)
    async def deliver_due() -> int:
        raise NotImplementedError

    assert drift(activity_stubs.send_handoffs, send_handoffs) == [
        f"arguments {signature(activity_stubs.send_handoffs)[0]} != [{Handoff!r}]"
    ]
    assert drift(activity_stubs.deliver_due, deliver_due) == [
        f"result {signature(activity_stubs.deliver_due)[1]} != {int!r}"
    ]


async def test_a_stub_never_runs() -> None:
    with pytest.raises(NotImplementedError, match="stub"):
        await activity_stubs.deliver_due()


def _scheduled(path: Path) -> list[tuple[int, ast.expr]]:
    """What each `execute_activity` / `execute_local_activity` call in a module names."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("execute_activity", "execute_local_activity")
        ):
            found.append((node.lineno, node.args[0]))
    return found


def test_workflows_call_activities_by_stub_not_by_name() -> None:
    """A string name would drop the types (and need `result_type` by hand)."""
    by_name = []
    calls = 0
    for path in sorted(WORKFLOWS.glob("*.py")):
        for line, target in _scheduled(path):
            calls += 1
            is_stub = (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "activity"
                and callable(getattr(activity_stubs, target.attr, None))
            )
            if not is_stub:
                by_name.append(f"{path.name}:{line}: {ast.unparse(target)}")
        assert "activity_names as activity" not in path.read_text(encoding="utf-8"), path.name
    assert calls >= 9
    assert not by_name, "call activities through workflows.activity_stubs:\n" + "\n".join(by_name)


def test_one_store_retry_policy_with_the_values_it_always_had() -> None:
    """Tickets and reviews each defined it; one definition keeps the values both had."""
    assert (
        RetryPolicy(
            initial_interval=timedelta(seconds=1),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(minutes=1),
            non_retryable_error_types=["BadData"],
        )
        == activity_stubs.STORE_RETRY
    )
    defined = [
        f"{path.name}:{node.lineno}"
        for path in sorted(WORKFLOWS.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "RetryPolicy"
        and "BadData" in ast.unparse(node)
    ]
    assert len(defined) == 1, defined
