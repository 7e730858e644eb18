"""The workflow sandbox: the test workers, the replayer, the relay's lane and the dev
stack run in it, and a worker process when `Settings.workflow_sandbox` says so.

The ticket's pure modules (contracts, policy, rules, its SLA clock, timers, record and
view) are passed through by name: they are deterministic, and loading them inside the
sandbox would wrap `zoneinfo.ZoneInfo` in the sandbox's restricted proxy, which
`datetime.astimezone` refuses ("tzinfo argument must be None or of a tzinfo subclass").
Listing them here, rather than relying only on `imports_passed_through()` at the import
site, holds however the package was first loaded.
"""

from __future__ import annotations

from temporalio.worker import UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

PURE_MODULES = (
    "workflows.vocabulary",
    "workflows.bounds",
    "workflows.primitives",
    "workflows.events",
    "workflows.business_time",
    "workflows.policy",
    "workflows.contracts",
    "workflows.classification",
    "workflows.ticket_rules",
    "workflows.sla_clock",
    "workflows.ticket_record",
    "workflows.ticket_timers",
    "workflows.ticket_view",
    "workflows.search_attributes",
    "workflows.privacy",
    "workflows.activity_names",
    "workflows.activity_stubs",
    "workflows.surge_contracts",
    "workflows.review_contracts",
    "workflows.review_rules",
)


def workflow_runner(sandboxed: bool = True) -> WorkflowRunner:
    """The sandbox, or none. The tests, the replayer and the relay's lane run sandboxed; a
    ticket worker follows `Settings.workflow_sandbox`, off by default: without the sandbox
    it builds and keeps each ticket for about a third less CPU and memory
    (docs/benchmarks.md, "The sandbox: measured, then turned off"). What the sandbox would
    refuse at run time (clocks, randomness, the environment, files, the network, threads,
    imports against the layering) ruff's banned-api refuses in workflows/ before the code
    runs, and the suite exercises every workflow path inside the sandbox."""
    if not sandboxed:
        return UnsandboxedWorkflowRunner()
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PURE_MODULES)
    )
