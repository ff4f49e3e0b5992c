"""Model calls: a turn the response cache answers against one that waits for the model, and what
``LLMClient`` adds to each call over the bare OpenAI SDK.

Run: ``.venv/bin/python bench/llm_calls.py`` (add ``--check`` to exit 1 when the target is missed).

It starts a throwaway redis-server and the tests' OpenAI-compatible server
(``tests/openai_server.py``, in a thread of this process) on loopback. Two
measurements, in the same run:

1. Cache against model. Turns go through ``LLMClient.complete`` as an agent's do:
   a model turn asks something new, so both cache layers miss and the model
   answers after 300 ms; a local hit asks what this process was answered
   before; a Redis hit asks what another process was answered (a second
   ``Resources`` on the same Redis, its in-process cache empty). The median
   turn of each and the model turn's multiple of it.
2. Wrapper overhead. With the model answering at once, one call at a time:
   ``LLMClient.complete(..., cache=False)`` (spans, accounting, the retry loop)
   against ``AsyncOpenAI().chat.completions.create`` on the same server, and
   the wrapper again with the OpenTelemetry SDK installed. The variants take
   turns call by call, so drift on a shared machine hits all alike. Reported:
   the median of the per-round medians, and the median over rounds of each
   round's difference to the SDK.

Target: ``LLMClient`` adds less than 1 ms per call to the bare SDK.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import openai
import uvloop
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from agents import AgentSettings
from agents.llm import ChatMessage, Model
from agents.llm.client import Scope
from agents.resources import Resources
from tests.openai_server import OpenAIServer
from tests.redis_server import RedisServer

MODEL = Model(name="bench-model")
SCOPE = Scope(tenant="bench", agent="bench", context_id="c1")
QUESTION = "My invoice for October shows two charges for the Pro plan. Was I billed twice?"
LATENCY = 0.3
TARGET_MS = 1.0
WARM_UP = 50


def settings(server: OpenAIServer, redis_url: str) -> AgentSettings:
    return AgentSettings(_env_file=None, llm_base_url=server.url, llm_api_key="test", redis_url=redis_url)


def question(n: int) -> list[ChatMessage]:
    """A different question per ``n``, so each has its own cache key."""
    return [ChatMessage.user(f"{QUESTION} (#{n})")]


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def turns(resources: Resources, numbers: range) -> list[float]:
    """One cached turn per question, as an agent makes it."""
    samples = []
    for n in numbers:
        messages = question(n)
        started = time.perf_counter()
        await resources.llm.complete(MODEL, messages, scope=SCOPE)
        samples.append(time.perf_counter() - started)
    return samples


async def cache_against_model(
    server: OpenAIServer, redis_url: str, cached: int, model_turns: int
) -> dict[str, float]:
    """Median seconds per turn: from each cache layer and from the model."""
    first = Resources.from_settings(settings(server, redis_url))
    second = Resources.from_settings(settings(server, redis_url))
    try:
        server.latency = 0.0
        await turns(first, range(-WARM_UP, 0))  # import paths, connection pools, decoders
        await second.redis.ping()
        await turns(first, range(cached))  # the questions the hits below ask: in both layers now
        before = first.cache.stats.misses
        server.latency = LATENCY
        model = await turns(first, range(cached, cached + model_turns))
        server.latency = 0.0
        local = await turns(first, range(cached))
        redis = await turns(second, range(cached))
        # Each sample must have come from the layer it is reported under.
        assert first.cache.stats.misses - before == model_turns, first.cache.stats
        assert second.cache.stats.redis_hits == cached, second.cache.stats
        assert second.cache.stats.local_hits == second.cache.stats.misses == 0, second.cache.stats
    finally:
        await second.close()
        await first.close()
    return {
        "model (300 ms)": statistics.median(model),
        "local cache hit": statistics.median(local),
        "Redis cache hit": statistics.median(redis),
    }


async def wrapper_overhead(
    server: OpenAIServer, redis_url: str, rounds: int, calls: int
) -> dict[str, list[float]]:
    """Per variant, the median seconds per call of each round."""
    server.latency = 0.0
    plain = Resources.from_settings(settings(server, redis_url))
    traced = Resources.from_settings(
        settings(server, redis_url), tracer_provider=TracerProvider(), meter_provider=MeterProvider()
    )
    sdk = openai.AsyncOpenAI(base_url=server.url, api_key="test", max_retries=0, timeout=60.0)
    messages = question(0)
    prompt: list[Any] = [{"role": "user", "content": messages[0].content}]

    async def call_sdk() -> object:
        return await sdk.chat.completions.create(model=MODEL.name, messages=prompt)

    async def call_plain() -> object:
        return await plain.llm.complete(MODEL, messages, scope=SCOPE, cache=False)

    async def call_traced() -> object:
        return await traced.llm.complete(MODEL, messages, scope=SCOPE, cache=False)

    variants = {"AsyncOpenAI": call_sdk, "LLMClient": call_plain, "LLMClient + OTel SDK": call_traced}
    results: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for call in variants.values():
            for _ in range(WARM_UP):
                await call()
        order = list(variants.items())
        for _ in range(rounds):
            samples: dict[str, list[float]] = {name: [] for name in variants}
            for number in range(calls):
                # One call of each in turn, starting from a different one each time.
                shift = number % len(order)
                for name, call in order[shift:] + order[:shift]:
                    samples[name].append(await timed(call))
            for name, values in samples.items():
                results[name].append(statistics.median(values))
            server.clear()  # the server keeps every request body; keep its lock and list small
    finally:
        await sdk.close()
        await traced.close()
        await plain.close()
    return results


def report(cache: dict[str, float], overhead: dict[str, list[float]], calls: int) -> float:
    print(f"Turns through LLMClient.complete; the model answers after {LATENCY * 1e3:.0f} ms\n")
    print(f"{'':22} {'median (ms)':>12} {'model / this':>13}")
    model = cache["model (300 ms)"]
    for name, seconds in cache.items():
        print(f"{name:22} {seconds * 1e3:12.3f} {model / seconds:12.0f}x")

    rounds = len(overhead["AsyncOpenAI"])
    print(f"\nOne call at a time, model answers at once; {calls} calls a round, median of {rounds} rounds\n")
    print(f"{'':22} {'median (ms)':>12} {'over SDK (ms)':>14} {'rounds min..max (ms)':>22}")
    base = overhead["AsyncOpenAI"]
    differences: dict[str, float] = {}
    for name, medians in overhead.items():
        per_round = [m - b for m, b in zip(medians, base, strict=True)]
        differences[name] = statistics.median(per_round)
        spread = f"{min(per_round) * 1e3:+.3f}..{max(per_round) * 1e3:+.3f}"
        over = "" if name == "AsyncOpenAI" else f"{differences[name] * 1e3:+14.3f}"
        print(f"{name:22} {statistics.median(medians) * 1e3:12.3f} {over:>14} {spread if over else '':>22}")
    overhead_ms = differences["LLMClient"] * 1e3
    print("over SDK: median over rounds of (that round's median - the SDK's median in the same round)")
    print(f"\nLLMClient over the bare SDK: {overhead_ms:+.3f} ms per call (target < {TARGET_MS:g} ms)")
    return overhead_ms


async def main(args: argparse.Namespace) -> int:
    with RedisServer() as redis, OpenAIServer() as server:
        cache = await cache_against_model(server, redis.url, args.cached, args.model_turns)
        overhead = await wrapper_overhead(server, redis.url, args.rounds, args.calls)
    overhead_ms = report(cache, overhead, args.calls)
    return 1 if args.check and overhead_ms >= TARGET_MS else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the wrapper overhead measurement")
    parser.add_argument("--calls", type=int, default=300, help="calls per variant and round")
    parser.add_argument("--cached", type=int, default=20, help="cached turns per cache layer")
    parser.add_argument("--model-turns", type=int, default=8, help="turns that wait for the model")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    sys.exit(uvloop.run(main(parser.parse_args())))
