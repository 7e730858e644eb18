"""`ticketflow`: one command for developers and operators.

    ticketflow dev                          Temporal dev server + PostgreSQL + worker
    ticketflow worker                       a worker against an existing cluster
    ticketflow migrate                      apply the event-store schema
    ticketflow register-search-attributes   prepare a namespace for tickets
    ticketflow api                          the HTTP API
    ticketflow codec-server                 decrypted payloads for the Temporal UI and CLI
    ticketflow codec new-key                a new payload encryption key
    ticketflow ticket open|show|act|events|list   tickets through the HTTP API
    ticketflow keys create                  a new API key and its configuration entry
    ticketflow erase-customer ID            erase a customer's personal data (operator key)

The Temporal connection follows the `temporal` CLI's environment (TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*, TEMPORAL_PROFILE, config file);
everything else is `TICKETFLOW_*` and `DATABASE_URL` (see workers/settings.py).
Modules are imported per command so `--help` and typos answer instantly.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from workers.settings import Settings

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def _settings() -> Settings:
    from workers.logging import configure_logging
    from workers.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level)
    return settings


def _cmd_dev(args: argparse.Namespace) -> None:
    from workers.devstack import dev

    dev(args.file)


async def _worker(settings: Settings) -> None:
    from workers.lifecycle import stop_on_signals, worker_database
    from workers.main import load_templates, run_worker
    from workers.temporal_client import connect_temporal

    load_templates(settings)  # a bad template stops the start before anything connects
    stop = asyncio.Event()
    stop_on_signals(stop, settings.stop_bound)
    async with worker_database(settings) as database_url:
        client = await connect_temporal(settings)
        await run_worker(settings, client, database_url, stop)


def _cmd_worker(_: argparse.Namespace) -> None:
    asyncio.run(_worker(_settings()))


async def _migrate(settings: Settings) -> None:
    from activities.database import create_pool, migrate
    from workers.lifecycle import worker_database

    async with worker_database(settings) as database_url:
        pool = await create_pool(database_url)
        try:
            applied = await migrate(pool)
        finally:
            await pool.close()
    print(f"database schema is up to date (applied now: {', '.join(applied) or 'nothing'})")


def _cmd_migrate(_: argparse.Namespace) -> None:
    asyncio.run(_migrate(_settings()))


async def _register(settings: Settings, namespace: str | None) -> None:
    from workers.cluster import register_search_attributes
    from workers.temporal_client import connect_temporal

    client = await connect_temporal(settings, namespace=namespace)
    added = await register_search_attributes(client, client.namespace)
    names = ", ".join(added) if added else "nothing, all present"
    print(f"namespace {client.namespace!r}: registered {names}")


def _cmd_register(args: argparse.Namespace) -> None:
    asyncio.run(_register(_settings(), args.namespace))


# Exit status of `tickets-before` while tickets that began before remain: a deploy script
# with `set -e` stops short of the upgrade that would retire their patch branches.
EXIT_TICKETS_REMAIN = 3


async def _tickets_before(settings: Settings, args: argparse.Namespace) -> int:
    from workers.temporal_client import connect_temporal
    from workers.upgrade_check import build_started, report, tickets_started_before

    client = await connect_temporal(settings)
    if args.build:
        deployment = args.deployment or settings.deployment.name
        since = await build_started(client, deployment, args.build)
    else:
        since = args.since
    found = await tickets_started_before(client, settings.task_queue, since)
    print(report(found))
    return EXIT_TICKETS_REMAIN if found.count else 0


def _cmd_tickets_before(args: argparse.Namespace) -> None:
    status = asyncio.run(_tickets_before(_settings(), args))
    if status:
        raise SystemExit(status)


def _instant(text: str) -> datetime:
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 instant: {text!r}") from None
    if instant.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (e.g. +08:00 or Z)")
    return instant


async def _api(settings: Settings) -> None:
    from api.server import serve
    from workers.lifecycle import stop_on_signals
    from workers.settings import ConfigurationError
    from workers.temporal_client import connect_temporal

    if not settings.database_url:
        raise ConfigurationError(
            "the API reads the worker's PostgreSQL: set DATABASE_URL "
            "(`ticketflow dev` runs the API with its own database)"
        )
    stop = asyncio.Event()
    stop_on_signals(stop, settings.stop_bound)
    client = await connect_temporal(settings)
    await serve(settings.api_config(), client, stop, settings.database_url)


def _cmd_api(_: argparse.Namespace) -> None:
    asyncio.run(_api(_settings()))


async def _codec_server(settings: Settings) -> None:
    from api.access import KeyRing, configured_keys
    from workers.codec import EncryptionCodec
    from workers.codec_server import serve_codec
    from workers.lifecycle import stop_on_signals
    from workers.settings import ConfigurationError
    from workers.temporal_client import codec_keys

    keys = codec_keys(settings)
    if keys is None:
        raise ConfigurationError("the codec server needs the payload keys (TICKETFLOW_CODEC__KEYS)")
    stop = asyncio.Event()
    stop_on_signals(stop, settings.stop_bound)
    server = settings.codec.server
    print(
        f"codec server on http://{server.host}:{server.port} for {', '.join(server.cors_origins)}"
    )
    await serve_codec(EncryptionCodec(keys), KeyRing(configured_keys(settings.api)), server, stop)


def _cmd_codec_server(_: argparse.Namespace) -> None:
    asyncio.run(_codec_server(_settings()))


def _cmd_codec_new_key(_: argparse.Namespace) -> None:
    from workers.codec import new_key

    print(new_key())


def _console_settings() -> Settings:
    from workers.settings import load_settings

    return load_settings()


def _api_url() -> str:
    return _console_settings().api.url


def _policy_zone() -> str:
    """The zone the console shows times in: the policy's, as the API and workers read it
    from the same configuration."""
    return _console_settings().policy.time_zone


def _cmd_ticket(args: argparse.Namespace) -> None:
    from cli.tickets import run_ticket

    print(run_ticket(args, _api_url, _policy_zone))


def _cmd_knowledge(args: argparse.Namespace) -> None:
    from cli.knowledge import run_knowledge

    print(run_knowledge(args, _api_url))


def _cmd_classifier(args: argparse.Namespace) -> None:
    """Train on the shipped examples and every agent's reclassification, and write the
    model where the worker finds it (it loads the newest at its next start)."""
    from activities.classifier import Classifier, agent_labels, builtin_examples
    from activities.database import create_pool
    from workers.settings import load_settings

    settings = load_settings()

    async def train() -> Path:
        examples = builtin_examples()
        if settings.database_url:
            pool = await create_pool(settings.database_url)
            try:
                examples += await agent_labels(pool)
            finally:
                await pool.close()
        model = await asyncio.to_thread(Classifier.fit, examples)
        return model.save(settings.data_dir / "models")

    print(asyncio.run(train()))


def _cmd_review(args: argparse.Namespace) -> None:
    from cli.reviews import run_review

    print(run_review(args, _api_url))


def _cmd_erase(args: argparse.Namespace) -> None:
    from cli.erasure import run_erase

    print(run_erase(args, _api_url, _policy_zone))


def _cmd_keys(args: argparse.Namespace) -> None:
    from cli.keys import create_key

    print(create_key(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ticketflow",
        description="Customer-service tickets as durable Temporal workflows.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser("dev", help="run the whole local stack (Ctrl-C stops it)")
    dev.add_argument(
        "--file", type=Path, default=None, help="dev environment file (default: temporal-dev.yml)"
    )
    dev.set_defaults(handler=_cmd_dev)

    commands.add_parser("worker", help="run a worker against an existing cluster").set_defaults(
        handler=_cmd_worker
    )
    commands.add_parser("migrate", help="apply the database schema").set_defaults(
        handler=_cmd_migrate
    )
    register = commands.add_parser(
        "register-search-attributes", help="register the ticket search attributes (idempotent)"
    )
    register.add_argument("--namespace", default=None, help="default: from the Temporal config")
    register.set_defaults(handler=_cmd_register)
    before = commands.add_parser(
        "tickets-before",
        help="running tickets that began before a build (or instant): may a patch go?",
    )
    since = before.add_mutually_exclusive_group(required=True)
    since.add_argument("--build", help="a build id of the Worker Deployment")
    since.add_argument("--since", type=_instant, help="an ISO 8601 instant with its offset")
    before.add_argument("--deployment", default=None, help="default: TICKETFLOW_DEPLOYMENT__NAME")
    before.set_defaults(handler=_cmd_tickets_before)
    commands.add_parser("api", help="serve the HTTP API").set_defaults(handler=_cmd_api)
    commands.add_parser(
        "codec-server", help="decrypt payloads for the Temporal UI and CLI (operator keys)"
    ).set_defaults(handler=_cmd_codec_server)
    codec = commands.add_parser("codec", help="payload encryption keys")
    codec_verbs = codec.add_subparsers(dest="verb", required=True, metavar="VERB")
    codec_verbs.add_parser("new-key", help="print a new AES-256 key (base64)").set_defaults(
        handler=_cmd_codec_new_key
    )
    from cli.erasure import add_erase_command
    from cli.keys import add_keys_commands
    from cli.knowledge import add_knowledge_commands
    from cli.reviews import add_review_commands
    from cli.tickets import add_ticket_commands

    add_ticket_commands(commands, _cmd_ticket)
    add_review_commands(commands, _cmd_review)
    add_knowledge_commands(commands, _cmd_knowledge)
    classifier = commands.add_parser("classifier", help="the learned classifier")
    classifier_verbs = classifier.add_subparsers(dest="verb", required=True, metavar="VERB")
    classifier_verbs.add_parser(
        "train", help="retrain on the shipped examples and the agents' corrections"
    )
    classifier.set_defaults(handler=_cmd_classifier)
    add_erase_command(commands, _cmd_erase)
    add_keys_commands(commands, _cmd_keys)
    return parser


def _expected_errors() -> tuple[type[BaseException], ...]:
    """Failures that deserve one line, not a traceback: bad configuration, an unreachable
    server or database. Anything else is a bug and keeps its traceback."""
    from temporalio.service import RPCError

    from workers.cluster import SearchAttributeConflict
    from workers.devspec import DevFileError
    from workers.devstack import DevStackError
    from workers.settings import ConfigurationError
    from workers.upgrade_check import UnknownBuild

    errors: list[type[BaseException]] = [
        ConfigurationError,
        UnknownBuild,
        DevFileError,
        DevStackError,
        SearchAttributeConflict,
        RPCError,
        ConnectionError,
        OSError,
    ]
    try:
        import asyncpg

        from activities.database import MigrationError

        errors += [asyncpg.PostgresError, MigrationError]
    except ImportError:  # a broken install should still get its one-line message
        pass
    try:
        from cli.http import ConsoleError

        errors.append(ConsoleError)
    except ImportError:
        pass
    return tuple(errors)


def _describe(error: BaseException) -> str:
    return str(error).strip() or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = cast(Callable[[argparse.Namespace], None], args.handler)
    try:
        handler(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as error:
        if isinstance(error, _expected_errors()) or _is_connect_failure(error):
            print(f"ticketflow {args.command}: {_describe(error)}", file=sys.stderr)
            return EXIT_ERROR
        raise
    finally:
        _release_temporal()
    return 0


def _release_temporal() -> None:
    # Only if a command connected: importing the SDK here would slow every other command.
    if "workers.temporal_client" in sys.modules:
        from workers.temporal_client import release_runtime

        release_runtime()


def _is_connect_failure(error: BaseException) -> bool:
    # The SDK reports an unreachable server as a bare RuntimeError.
    return isinstance(error, RuntimeError) and "client connect" in str(error).lower()


if __name__ == "__main__":
    sys.exit(main())
