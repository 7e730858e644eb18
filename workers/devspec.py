"""`temporal-dev.yml` as the local launcher reads it.

The file is a Docker Compose file, and the `command:` of its `temporal` service is the one
list of `temporal server start-dev` arguments. Locally the same list runs with exactly two
substitutions: the SQLite file moves from the container's /data volume to the data
directory, and the server binds to loopback instead of every interface of a container.
Everything else (namespace, ports, pragmas, search attributes, dynamic config) is read,
never restated, so the two ways of running the stack cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

DEV_FILE = Path(__file__).resolve().parent.parent / "temporal-dev.yml"
SERVICE = "temporal"
SUBCOMMAND = ("server", "start-dev")
LOCAL_IP = "127.0.0.1"

# Where the server listens and stores: the launcher and test fixtures decide these.
PLACEMENT_FLAGS = frozenset(
    {"--ip", "--ui-ip", "--port", "--ui-port", "--db-filename", "--namespace"}
)


class DevFileError(Exception):
    """temporal-dev.yml cannot be read as the launcher needs it."""


@dataclass(frozen=True)
class Flag:
    name: str
    value: str | None
    inline: bool  # `--name=value` (one token) rather than `--name value`

    def tokens(self) -> list[str]:
        if self.value is None:
            return [self.name]
        if self.inline:
            return [f"{self.name}={self.value}"]
        return [self.name, self.value]

    def with_value(self, value: str) -> Flag:
        return Flag(self.name, value, self.inline)


@dataclass(frozen=True)
class DevServerSpec:
    """The `temporal` service's command, parsed."""

    command: tuple[str, ...]
    flags: tuple[Flag, ...]

    def values(self, name: str) -> list[str]:
        return [flag.value for flag in self.flags if flag.name == name and flag.value is not None]

    def value(self, name: str) -> str | None:
        found = self.values(name)
        return found[-1] if found else None  # the CLI lets the last occurrence win

    def required(self, name: str) -> str:
        value = self.value(name)
        if value is None:
            raise DevFileError(f"the {SERVICE} service's command has no {name}")
        return value

    @property
    def namespace(self) -> str:
        return self.value("--namespace") or "default"

    @property
    def port(self) -> int:
        return int(self.required("--port"))

    @property
    def ui_port(self) -> int:
        return int(self.required("--ui-port"))

    @property
    def db_filename(self) -> str:
        return self.required("--db-filename")

    def search_attributes(self) -> dict[str, str]:
        """`{"TicketStatus": "Keyword", ...}` as declared with --search-attribute."""
        declared: dict[str, str] = {}
        for item in self.values("--search-attribute"):
            name, _, kind = item.partition("=")
            declared[name] = kind
        return declared

    def local_db_path(self, data_dir: Path) -> Path:
        return data_dir / PurePosixPath(self.db_filename).name

    def local_args(self, data_dir: Path) -> list[str]:
        """The command for the pip-installed binary: same list, local file and address."""
        args: list[str] = list(SUBCOMMAND)
        for flag in self.flags:
            if flag.name == "--db-filename":
                flag = flag.with_value(str(self.local_db_path(data_dir)))
            elif flag.name == "--ip":
                flag = flag.with_value(LOCAL_IP)
            args.extend(flag.tokens())
        return args

    def placed_args(self, port: int, ui_port: int, db_path: Path) -> list[str]:
        """The command on ports and a file of one's own (the bench, beside `make dev`):
        the yml's behaviour and namespace, on loopback."""
        return [
            *SUBCOMMAND,
            f"--ip={LOCAL_IP}",
            f"--port={port}",
            f"--ui-port={ui_port}",
            f"--db-filename={db_path}",
            f"--namespace={self.namespace}",
            *self.behaviour_args(),
        ]

    def behaviour_args(self) -> list[str]:
        """What the server *is* (pragmas, search attributes, dynamic config) without
        where it listens or stores: for test fixtures that pick their own ports and files."""
        args: list[str] = []
        for flag in self.flags:
            if flag.name not in PLACEMENT_FLAGS:
                args.extend(flag.tokens())
        return args


def parse_command(command: list[str]) -> DevServerSpec:
    if tuple(command[:2]) != SUBCOMMAND:
        raise DevFileError(f"the {SERVICE} service's command must start with 'server start-dev'")
    flags: list[Flag] = []
    rest = command[2:]
    index = 0
    while index < len(rest):
        token = rest[index]
        if not token.startswith("--"):
            raise DevFileError(
                f"unexpected {token!r} in the {SERVICE} command: use long --flag=value items"
            )
        name, sep, value = token.partition("=")
        if sep:
            flags.append(Flag(name, value, inline=True))
        elif index + 1 < len(rest) and not rest[index + 1].startswith("--"):
            flags.append(Flag(name, rest[index + 1], inline=False))
            index += 1
        else:
            flags.append(Flag(name, None, inline=False))  # a switch such as --headless
        index += 1
    return DevServerSpec(command=tuple(command), flags=tuple(flags))


def load_compose(path: Path = DEV_FILE) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise DevFileError(f"{path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise DevFileError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(document, dict):
        raise DevFileError(f"{path}: expected a Compose file (a mapping at the top)")
    return document


def load_dev_spec(path: Path = DEV_FILE) -> DevServerSpec:
    document = load_compose(path)
    try:
        command = document["services"][SERVICE]["command"]
    except (KeyError, TypeError):
        raise DevFileError(f"{path}: no services.{SERVICE}.command") from None
    if not isinstance(command, list) or not all(isinstance(item, str) for item in command):
        raise DevFileError(f"{path}: services.{SERVICE}.command must be a list of strings")
    return parse_command(command)
