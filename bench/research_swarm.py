"""The research swarm: one brief run sequentially, in parallel, and in parallel with a warm cache.

Run: ``.venv/bin/python bench/research_swarm.py`` (add ``--check`` to exit 1 when a target is missed).

It starts the embedded NATS server, a throwaway redis-server, the tests'
OpenAI-compatible server (``tests/openai_server.py``, in a thread of this
process) answering as a research model would (``tests/research_model.py``)
after a latency of 1 to 3 s per call (a hash of the request picks it, so the
same call waits the same time in every mode), and the research agents as
processes: knowledge, planner, writer and analysts. The same brief, split
into N = 8 sub-questions (each answered with two model calls, the plan and
the report one more each), is then researched:

1. sequentially: one analyst replica that runs one task at a time, caches off;
2. in parallel: N analyst replicas, a tenant whose caches are empty (cold);
3. in parallel again for the same tenant: the tool-result and response caches warm.

Reported: wall time of each run (client side), the analysts' share of it
(first sub-question started to last one done), model calls, tokens, and the
speed-ups. The model's latency dominates every run, so the ratios hold on a
busy machine; the absolute times do not.

Targets (research swarm issue): parallel >= 0.8 x N times faster than
sequential (whole run; the plan and the report are one call each in both
modes, so this is checked on the analysts' share as well), and the warm rerun
>= 10 x faster than the cold one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import uvloop

from agents import AgentSettings, Mesh
from agents.research.messages import RESEARCH_KEY, ResearchRequest, RunSummary
from agents.research.settings import CORPUS
from bench.processes import agent_processes
from bus import Bus, EmbeddedNats, Message, new_id
from knowledge.messages import IngestReply, IngestRequest
from tests.openai_server import OpenAIServer
from tests.redis_server import RedisServer
from tests.research_model import research_model

BRIEF = "Assess the market for heat pumps in the Nordics"
CORE = ["knowledge.agent:knowledge", "agents.research.planner:planner", "agents.research.writer:writer"]
ANALYST = "agents.research.analyst:analyst"
QUESTIONS = 8
# Seconds the agent processes may take to start, all together (a shared machine can be slow).
START = 300.0
PRICES = '{"gpt-4o-mini": {"input": 0.15, "output": 0.6}}'


@dataclass
class Measured:
    wall: float
    analysts: float
    calls: int
    summary: RunSummary


async def ingest(mesh: Mesh, tenant: str) -> None:
    caller = mesh.caller(tenant, timeout=120)
    for path in sorted(CORPUS.glob("*.md")):
        request = IngestRequest(source=path.name, text=path.read_text(), kb="research")
        await caller.call("knowledge", "ingest", request, IngestReply)


async def run(mesh: Mesh, server: OpenAIServer, tenant: str, *, cache: bool) -> Measured:
    request = ResearchRequest(brief=BRIEF, max_questions=QUESTIONS, deadline=600, cache=cache, max_tokens=0)
    asked = len(server.requests)
    started = time.perf_counter()
    reply = await mesh.caller(tenant).call("planner", "research", request, Message, timeout=900)
    wall = time.perf_counter() - started
    assert reply.metadata is not None
    summary = msgspec.convert(reply.metadata[RESEARCH_KEY], RunSummary)
    if summary.answered != QUESTIONS or summary.stopped:
        raise SystemExit(f"the run did not finish: {summary}")
    slots = summary.timeline
    analysts = max(s.ended for s in slots) - min(s.started for s in slots)
    return Measured(wall, analysts, len(server.requests) - asked, summary)


async def main(args: argparse.Namespace) -> int:
    with (
        tempfile.TemporaryDirectory(prefix="bench-research-") as data,
        RedisServer() as redis,
        OpenAIServer(latency=(args.low, args.high)) as server,
    ):
        server.respond_with(research_model)
        env = {
            "HIVEWIRE_LLM_BASE_URL": server.url,
            "HIVEWIRE_LLM_API_KEY": "bench",
            "HIVEWIRE_LLM_PRICES": PRICES,
            "HIVEWIRE_REDIS_URL": redis.url,
            "HIVEWIRE_CHROMA_PATH": str(Path(data) / "chroma"),
            "HIVEWIRE_TASK_CONCURRENCY": "1",
        }
        async with EmbeddedNats(port=0, data_dir=Path(data) / "nats") as nats:
            settings = AgentSettings(nats_url=nats.url, _env_file=None)
            bus = await Bus.connect(settings, name="bench-research")
            try:
                results = await measure(Mesh.open(bus, settings), server, nats.url, env, args)
            finally:
                await bus.close()
    return report(results, args)


async def measure(
    opening: Awaitable[Mesh], server: OpenAIServer, url: str, env: dict[str, str], args: argparse.Namespace
) -> dict[str, list[Measured]]:
    mesh = await opening
    results: dict[str, list[Measured]] = {"sequential": [], "parallel": [], "warm": []}
    async with agent_processes(url, CORE, start_timeout=START, **env):
        tenants = [(f"seq{new_id()[:6]}", f"par{new_id()[:6]}") for _ in range(args.rounds)]
        for pair in tenants:
            for tenant in pair:
                await ingest(mesh, tenant)
        warm_up = f"warm{new_id()[:6]}"
        await ingest(mesh, warm_up)
        if not args.skip_sequential:
            async with agent_processes(
                url, [ANALYST], start_timeout=START, **env
            ):  # one replica, one task at a time
                await warm(mesh, server, warm_up)
                for n, (tenant, _) in enumerate(tenants, 1):
                    results["sequential"].append(await run(mesh, server, tenant, cache=False))
                    print(f"sequential round {n}: {results['sequential'][-1].wall:.1f} s", file=sys.stderr)
        async with agent_processes(url, [ANALYST] * QUESTIONS, start_timeout=START, **env):
            await warm(mesh, server, warm_up)
            for n, (_, tenant) in enumerate(tenants, 1):
                results["parallel"].append(await run(mesh, server, tenant, cache=True))
                results["warm"].append(await run(mesh, server, tenant, cache=True))
                print(f"parallel round {n}: {results['parallel'][-1].wall:.1f} s", file=sys.stderr)
    return results


async def warm(mesh: Mesh, server: OpenAIServer, tenant: str) -> None:
    """One run without model latency or caches, so every replica has made its first calls
    (connections, the model client's first request, decoders) before anything is timed."""
    latency, server.latency = server.latency, 0.0
    try:
        await run(mesh, server, tenant, cache=False)
    finally:
        server.latency = latency


def median(measured: list[Measured], field: str) -> float:
    return statistics.median(float(getattr(m, field)) for m in measured)


def longest(measured: Measured) -> float:
    """The longest sub-question of a run: no scheduler can finish the analysts' share sooner."""
    return max(slot.ended - slot.started for slot in measured.summary.timeline)


def timeline(label: str, measured: Measured) -> None:
    slots = measured.summary.timeline
    start = min(s.started for s in slots)
    print(f"\n{label}: sub-question, replica, started and ended (s after the first started)")
    for slot in slots:
        print(f"  {slot.index}  {slot.instance:>24}  {slot.started - start:6.2f}  {slot.ended - start:6.2f}")


def report(results: dict[str, list[Measured]], args: argparse.Namespace) -> int:
    if args.timeline:
        for key in ("sequential", "parallel"):
            if results[key]:
                timeline(key, results[key][-1])
    print(
        f"\nresearch swarm: {QUESTIONS} sub-questions; model latency {args.low:g}-{args.high:g} s per call "
        f"(test server); Redis; median of {args.rounds} round(s)\n"
    )
    rows = (
        ("sequential (1 analyst, caches off)", "sequential"),
        (f"parallel ({QUESTIONS} analysts, cold caches)", "parallel"),
        ("parallel, warm caches", "warm"),
    )
    print(f"{'':38} {'wall (s)':>9} {'analysts (s)':>13} {'model calls':>12} {'tokens':>8} {'tool hits':>10}")
    for label, key in rows:
        measured = results[key]
        if not measured:
            continue
        summary = measured[-1].summary
        tokens = summary.input_tokens + summary.output_tokens
        hits = f"{summary.tool_cache_hits}/{summary.tool_calls}"
        print(
            f"{label:38} {median(measured, 'wall'):9.2f} {median(measured, 'analysts'):13.2f} "
            f"{median(measured, 'calls'):12.0f} {tokens:8d} {hits:>10}"
        )
    target = 0.8 * QUESTIONS
    warm = median(results["parallel"], "wall") / median(results["warm"], "wall")
    missed = warm < 10
    if results["sequential"]:
        sequential, parallel = results["sequential"], results["parallel"]
        whole = median(sequential, "wall") / median(parallel, "wall")
        share = median(sequential, "analysts") / median(parallel, "analysts")
        # The best any scheduler can do: the sequential share over the parallel run's longest sub-question.
        bound = median(sequential, "analysts") / statistics.median(longest(m) for m in parallel)
        plan_and_report = median(parallel, "wall") - median(parallel, "analysts")
        print(f"\nparallel vs sequential, whole run:       {whole:5.1f}x (target >= {target:g}x)")
        print(f"parallel vs sequential, analysts' share: {share:5.1f}x (target >= {target:g}x)")
        print(f"  bound for these latencies:             {bound:5.1f}x (sequential share / longest question)")
        print(f"  plan and report (serial in both modes): {plan_and_report:4.1f} s of the parallel run")
        missed = missed or share < target
    print(f"warm vs cold cache, whole run:           {warm:5.1f}x (target >= 10x)")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--low", type=float, default=1.0, help="shortest model latency per call, seconds")
    parser.add_argument("--high", type=float, default=3.0, help="longest model latency per call, seconds")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--skip-sequential", action="store_true", help="measure the parallel runs only")
    parser.add_argument("--timeline", action="store_true", help="print when each sub-question ran")
    sys.exit(uvloop.run(main(parser.parse_args())))
