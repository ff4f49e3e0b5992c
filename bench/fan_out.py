"""Fan-out to 8 agents through ``Caller.gather`` against the same 8 calls made one after another.

Run: ``.venv/bin/python bench/fan_out.py`` (add ``--check`` to exit 1 when the target is missed).

It starts the embedded NATS server and 8 agent processes (``bench.zoo:sleeper0``
to ``sleeper7``), each a different agent whose one skill waits 200 ms as a call
to an LLM or a tool would. A client then makes one call to each agent, first
one after another with ``Caller.call``, then all at once with ``Caller.gather``.
Rounds alternate the two so drift on a shared machine hits both alike; the
median round is reported, next to the ideal (8 x 200 ms and 200 ms) and the
cost of one call to a skill that does not wait.

Target (agent runtime issue): sequential / parallel close to 8x (>= 7x).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import uvloop

from agents import AgentSettings, Call, Caller, Mesh
from bench.processes import agent_processes
from bench.zoo import FAN_OUT
from bus import Bus, EmbeddedNats

TENANT = "bench"
TARGET = 7.0


def settings(url: str) -> AgentSettings:
    return AgentSettings(nats_url=url, _env_file=None)  # type: ignore[call-arg]


async def sequential(caller: Caller, calls: list[Call[float]]) -> float:
    started = time.perf_counter()
    for call in calls:
        await caller.call(call.agent, call.skill, call.input, call.reply_type)
    return time.perf_counter() - started


async def parallel(caller: Caller, calls: list[Call[float]]) -> float:
    started = time.perf_counter()
    outcomes = await caller.gather(*calls)
    elapsed = time.perf_counter() - started
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise SystemExit(f"{len(failed)} of {len(calls)} calls failed: {failed[0]}")
    return elapsed


async def one_call(caller: Caller, agent: str, count: int) -> float:
    """The median cost of one call whose skill does not wait: the mesh's own overhead."""
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await caller.call(agent, "io", 0.0, float)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def measure(url: str, rounds: int, agents: int, seconds: float) -> dict[str, float]:
    bus = await Bus.connect(settings(url), name="bench-fan-out")
    mesh = await Mesh.open(bus, settings(url))
    caller = mesh.caller(TENANT)
    calls = [Call(f"sleeper{i}", "io", seconds, float) for i in range(agents)]
    warm_up = [Call(c.agent, c.skill, 0.0, float) for c in calls]
    for _ in range(3):  # warm up connections, subscriptions and decoders on both sides
        await sequential(caller, warm_up)
        await parallel(caller, warm_up)
    results: dict[str, list[float]] = {"sequential": [], "parallel": []}
    for _ in range(rounds):
        results["sequential"].append(await sequential(caller, calls))
        results["parallel"].append(await parallel(caller, calls))
    overhead = await one_call(caller, calls[0].agent, 200)
    await bus.close()
    return {**{name: statistics.median(v) for name, v in results.items()}, "one call": overhead}


def report(results: dict[str, float], agents: int, seconds: float, rounds: int) -> float:
    print(f"{agents} agents, one process each; every call waits {seconds * 1e3:.0f} ms; median of {rounds}\n")
    print(f"{'':24} {'wall (ms)':>10} {'ideal (ms)':>11} {'over (ms)':>10}")
    for name, ideal in (("sequential (call x 8)", agents * seconds), ("parallel (gather)", seconds)):
        wall = results["sequential" if name.startswith("seq") else "parallel"]
        print(f"{name:24} {wall * 1e3:10.1f} {ideal * 1e3:11.1f} {(wall - ideal) * 1e3:10.1f}")
    print(f"{'one call, no wait':24} {results['one call'] * 1e3:10.2f}")
    ratio = results["sequential"] / results["parallel"]
    print(f"\nsequential / parallel: {ratio:.2f}x (ideal {agents}x, target >= {TARGET:g})")
    return ratio


async def main(args: argparse.Namespace) -> int:
    if not 1 <= args.agents <= FAN_OUT:
        raise SystemExit(f"--agents must be between 1 and {FAN_OUT}")
    targets = [f"bench.zoo:sleeper{i}" for i in range(args.agents)]
    async with EmbeddedNats(port=0) as server, agent_processes(server.url, targets):
        results = await measure(server.url, args.rounds, args.agents, args.seconds)
    ratio = report(results, args.agents, args.seconds, args.rounds)
    return 1 if args.check and ratio < TARGET else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--agents", type=int, default=FAN_OUT, help="how many agents to fan out to")
    parser.add_argument("--seconds", type=float, default=0.2, help="simulated I/O per call")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    sys.exit(uvloop.run(main(parser.parse_args())))
