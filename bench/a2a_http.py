"""The A2A endpoint's throughput against the a2a-sdk's own reference server, serving the same echo agent.

Run: ``.venv/bin/python bench/a2a_http.py`` (``--check`` exits 1 when the target is missed,
``--rounds N``, ``--duration S``, ``--connections C``).

Both serve A2A's JSON-RPC binding on the same server stack (uvicorn, uvloop,
httptools), each in its own process, and answer ``SendMessage`` (blocking:
the reply is the finished task) with an agent that returns the message's
text in capitals:

* the reference: the a2a-sdk's Starlette app (``create_jsonrpc_routes``), its
  default request handler and ``InMemoryTaskStore``, and an ``AgentExecutor``
  that emits the task, the artifact and the completed status, in the server's
  own process (nothing durable, one process);
* Hivewire: ``hivewire gateway``, the request authenticated by API key and
  rate-limited in Redis, the message a durable task of the ``echo`` agent
  (``hivewire agent run bench.zoo:echo``, another process), queued in
  JetStream, run, recorded (compare-and-set) and announced, the gateway
  replying when the task's completion arrives.

``wrk`` (Debian's package; without it a Python load generator in its own
process) sends the requests over ``--connections`` connections, each with a
fresh ``messageId`` (a repeated one would be a resubmission, answered from the
record without running anything). Rounds alternate the two servers, so drift
of a shared machine hits both alike; the median round is reported with p50,
p99 and the CPU each process used, as a share of one core.

Target (A2A issue): Hivewire >= 2x the reference server's requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from agents import AgentSettings
from bench.gateway_http import (
    HOST,
    CpuMeter,
    Load,
    free_port,
    raise_nofile,
    redis_pid,
    redis_url,
    run_wrk,
    server_process,
    wait_ready,
)
from bench.processes import REPO, agent_processes
from bus import Bus, EmbeddedNats, new_id
from gateway.keys import ApiKeys

TARGET = 2.0

# A JSON-RPC SendMessage with a fresh messageId per request (wrk's Lua runs per connection thread).
WRK_SCRIPT = """\
counter = 0
prefix = string.format("%%d-%%d", os.time(), math.random(1, 1000000000))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["A2A-Version"] = "1.0"
%(auth)s
request = function()
  counter = counter + 1
  local body = string.format('%(body)s', counter, prefix, counter)
  return wrk.format(nil, nil, nil, body)
end
"""
BODY = (
    '{"jsonrpc":"2.0","id":%d,"method":"SendMessage","params":{"message":'
    '{"messageId":"m-%s-%d","role":"ROLE_USER","parts":[{"text":"hi"}],"metadata":{"skill":"shout"}}}}'
)


def serve_reference(port: int) -> None:
    """The a2a-sdk's reference server (its JSON-RPC app and in-memory task store) with an echo agent."""
    import uvicorn
    from a2a.helpers.proto_helpers import new_task, new_text_part
    from a2a.server.agent_execution import AgentExecutor, RequestContext
    from a2a.server.events import EventQueue
    from a2a.server.request_handlers import DefaultRequestHandler
    from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
    from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
    from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, TaskState
    from starlette.applications import Starlette

    class Echo(AgentExecutor):
        async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
            assert context.task_id is not None
            assert context.context_id is not None
            task = new_task(
                context.task_id,
                context.context_id,
                TaskState.TASK_STATE_SUBMITTED,
                history=[context.message] if context.message else [],
            )
            await event_queue.enqueue_event(task)
            updater = TaskUpdater(event_queue, context.task_id, context.context_id)
            await updater.add_artifact([new_text_part(context.get_user_input().upper())], name="result")
            await updater.complete()

        async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
            assert context.task_id is not None
            assert context.context_id is not None
            await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()

    card = AgentCard(
        name="echo",
        description="Echoes in capitals.",
        version="1.0.0",
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        capabilities=AgentCapabilities(streaming=True),
        skills=[AgentSkill(id="shout", name="shout", description="Capitals.", tags=["shout"])],
        supported_interfaces=[
            AgentInterface(url=f"http://{HOST}:{port}/", protocol_binding="JSONRPC", protocol_version="1.0")
        ],
    )
    handler = DefaultRequestHandler(agent_executor=Echo(), task_store=InMemoryTaskStore(), agent_card=card)
    app = Starlette(routes=[*create_jsonrpc_routes(handler, "/"), *create_agent_card_routes(card)])
    uvicorn.run(app, host=HOST, port=port, loop="uvloop", http="httptools", access_log=False, log_config=None)


def wrk_script(workdir: Path, name: str, key: str | None) -> Path:
    auth = f'wrk.headers["Authorization"] = "Bearer {key}"' if key else ""
    path = workdir / f"{name}.lua"
    path.write_text(WRK_SCRIPT % {"auth": auth, "body": BODY})
    return path


async def python_load(url: str, key: str | None, connections: int, duration: float) -> Load:
    """Without wrk: raw keep-alive HTTP/1.1 connections in another process, a fresh messageId each."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--load",
        url,
        *(["--key", key] if key else []),
        "--connections",
        str(connections),
        "--duration",
        str(duration),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), duration + 60)
    found = json.loads(out)
    return Load(found["rps"], found["p50"], found["p99"], found["requests"], found["errors"])


async def generate_load(url: str, key: str | None, connections: int, duration: float) -> None:
    """The fallback load generator's process: prints its figures as JSON."""
    host_port, _, path = url.partition("//")[2].partition("/")
    host, _, port = host_port.partition(":")
    prefix = new_id()[:12]
    counter = 0
    samples: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + duration

    async def connection() -> None:
        nonlocal counter, errors
        reader, writer = await asyncio.open_connection(host, int(port))
        while time.perf_counter() < stop_at:
            counter += 1
            body = (BODY % (counter, prefix, counter)).encode()
            head = (
                f"POST /{path} HTTP/1.1\r\nHost: {host_port}\r\nContent-Type: application/json\r\n"
                f"A2A-Version: 1.0\r\nContent-Length: {len(body)}\r\n"
                + (f"Authorization: Bearer {key}\r\n" if key else "")
                + "\r\n"
            )
            started = time.perf_counter()
            writer.write(head.encode() + body)
            response = await reader.readuntil(b"\r\n\r\n")
            length = int(response.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            reply = await reader.readexactly(length)
            samples.append(time.perf_counter() - started)
            if b'"TASK_STATE_COMPLETED"' not in reply:
                errors += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    samples.sort()
    result = {
        "rps": len(samples) / elapsed,
        "p50": samples[len(samples) // 2],
        "p99": samples[int(len(samples) * 0.99)],
        "requests": len(samples),
        "errors": errors,
    }
    print(json.dumps(result))


async def load(url: str, script: Path, key: str | None, args: argparse.Namespace, wrk: str | None) -> Load:
    if wrk is not None:
        return await run_wrk(url, script, args.connections, args.duration)
    return await python_load(url, key, args.connections, args.duration)


async def check_reply(url: str, key: str | None) -> None:
    """One request by hand first: both must answer with the finished task."""
    import httpx

    body = BODY % (0, "check", 0)
    headers = {"Content-Type": "application/json", "A2A-Version": "1.0"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    async with httpx.AsyncClient(timeout=30) as client:
        reply = (await client.post(url, content=body, headers=headers)).json()
    task = reply.get("result", {}).get("task", {})
    if task.get("status", {}).get("state") != "TASK_STATE_COMPLETED":
        raise SystemExit(f"{url} did not answer with the finished task: {reply}")
    if task["artifacts"][0]["parts"][0]["text"] != "HI":
        raise SystemExit(f"{url} did not echo the message: {reply}")


async def main(args: argparse.Namespace) -> int:
    raise_nofile()
    wrk = shutil.which("wrk")
    tenant = f"bench{new_id()[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix="hivewire-bench-a2a-"))
    async with EmbeddedNats(port=0) as nats_server, redis_url() as redis:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
            "HIVEWIRE_NATS_URL": nats_server.url,
            "HIVEWIRE_REDIS_URL": redis,
            # Only the rate is lifted: keys, the limiter and the token budget all still run.
            "HIVEWIRE_GATEWAY_TENANT_LIMITS": json.dumps({tenant: {"rate": 1e6, "burst": 1_000_000}}),
            "HIVEWIRE_GATEWAY_AGENT": "echo",
            "HIVEWIRE_GATEWAY_TIMEOUT": "30",
        }
        async with agent_processes(nats_server.url, ["bench.zoo:echo"]) as agent_pids:
            bus = await Bus.connect(AgentSettings(_env_file=None, nats_url=nats_server.url))  # type: ignore[call-arg]
            key, _ = await (await ApiKeys.open(bus)).create(tenant, name="bench")
            await bus.close()
            gateway_port, reference_port = free_port(), free_port()
            profile = ["-m", "cProfile", "-o", args.profile_gateway] if args.profile_gateway else []
            gateway_cmd = [sys.executable, *profile, "-m", "bus.cli", "--log-level", "WARNING", "gateway"]
            reference_cmd = [sys.executable, __file__, "--reference", str(reference_port)]
            with (
                server_process(
                    [*gateway_cmd, "--host", HOST, "--port", str(gateway_port)],
                    env,
                    workdir / "gateway.log",
                    # SIGTERM would end cProfile before it writes; SIGINT lets it.
                    stop=signal.SIGINT if args.profile_gateway else signal.SIGTERM,
                ) as gateway,
                server_process(reference_cmd, env, workdir / "reference.log") as reference,
            ):
                gateway_url = f"http://{HOST}:{gateway_port}/a2a/agents/echo"
                reference_url = f"http://{HOST}:{reference_port}/"
                await wait_ready(f"http://{HOST}:{gateway_port}/readyz", gateway, workdir / "gateway.log")
                await wait_ready(
                    f"http://{HOST}:{reference_port}/.well-known/agent-card.json",
                    reference,
                    workdir / "reference.log",
                )
                await check_reply(gateway_url, key)
                await check_reply(reference_url, None)
                pids = {
                    "gateway": gateway.pid,
                    "echo agent": agent_pids[0],
                    "nats-server": nats_server.pid or 0,
                    "reference": reference.pid,
                }
                if (pid := redis_pid(redis)) is not None:
                    pids["redis"] = pid
                scripts = {
                    "reference": wrk_script(workdir, "reference", None),
                    "hivewire": wrk_script(workdir, "hivewire", key),
                }
                targets = {"reference": (reference_url, None), "hivewire": (gateway_url, key)}
                rounds: dict[str, list[Load]] = {"reference": [], "hivewire": []}
                for name, (url, auth) in targets.items():  # warm-up: imports, caches, JIT of nothing
                    await load(url, scripts[name], auth, _short(args), wrk)
                for _ in range(args.rounds):
                    for name, (url, auth) in targets.items():
                        meter = CpuMeter(pids)
                        meter.start()
                        found = await load(url, scripts[name], auth, args, wrk)
                        found.cpu = meter.stop()
                        rounds[name].append(found)
    shutil.rmtree(workdir, ignore_errors=True)
    return report(args, rounds, wrk)


def _short(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "duration": min(3.0, args.duration)})


def report(args: argparse.Namespace, rounds: dict[str, list[Load]], wrk: str | None) -> int:
    def median(name: str) -> Load:
        loads = sorted(rounds[name], key=lambda load: load.rps)
        return loads[len(loads) // 2]

    reference, hivewire = median("reference"), median("hivewire")
    ratio = hivewire.rps / reference.rps
    print(
        f"A2A SendMessage (blocking), {args.connections} connections, {args.rounds} rounds of "
        f"{args.duration:g}s, load from {'wrk' if wrk else 'a Python process'}; median round:"
    )
    print(f"{'':32} {'req/s':>7} {'p50':>9} {'p99':>9} {'errors':>6} {'CPU/req':>8}   CPU (cores)")
    for label, found, servers in (
        ("a2a-sdk reference (in memory)", reference, SERVERS["reference"]),
        ("Hivewire (durable tasks)", hivewire, SERVERS["hivewire"]),
    ):
        cpu = ", ".join(f"{name} {share:.2f}" for name, share in found.cpu.items() if share >= 0.01)
        print(
            f"{label:32} {found.rps:7.0f} {found.p50 * 1000:7.1f}ms {found.p99 * 1000:7.1f}ms "
            f"{found.errors:6d} {cpu_per_request(found, servers) * 1e6:6.0f}µs   {cpu}"
        )
    for r, h in zip(rounds["reference"], rounds["hivewire"], strict=True):
        print(
            f"round: reference {r.rps:.0f} req/s, Hivewire {h.rps:.0f} req/s ({h.rps / r.rps:.2f}x); "
            f"CPU per request {cpu_per_request(r, SERVERS['reference']) * 1e6:.0f} µs and "
            f"{cpu_per_request(h, SERVERS['hivewire']) * 1e6:.0f} µs"
        )
    print(f"Hivewire / reference: {ratio:.2f}x (target >= {TARGET:g}x)")
    met = ratio >= TARGET and hivewire.errors == 0
    return 0 if met or not args.check else 1


# The processes that serve each side: their CPU per request is steadier than req/s on a shared machine.
SERVERS = {"reference": ("reference",), "hivewire": ("gateway", "echo agent", "nats-server", "redis")}


def cpu_per_request(found: Load, servers: tuple[str, ...]) -> float:
    """Seconds of CPU the serving processes used per request answered."""
    return sum(found.cpu.get(name, 0.0) for name in servers) / max(found.rps, 1e-9)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per round and server")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--profile-gateway", metavar="FILE", help="run the gateway under cProfile")
    parser.add_argument("--reference", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    if arguments.reference is not None:
        serve_reference(arguments.reference)
    elif arguments.load is not None:
        uvloop.run(generate_load(arguments.load, arguments.key, arguments.connections, arguments.duration))
    else:
        sys.exit(uvloop.run(main(arguments)))
