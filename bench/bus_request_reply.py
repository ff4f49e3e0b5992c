"""Request/reply through ``Bus`` against raw nats-py, same payload, same run, responder in another process.

Run: ``.venv/bin/python bench/bus_request_reply.py`` (add ``--check`` to exit 1 when a target is missed).

It starts the embedded NATS server and one responder process that serves the
same A2A message two ways: raw nats-py (echo the bytes) and ``Bus.serve``
(decode, hand the typed message to a handler, encode the reply). The caller
measures, for each: latency one request at a time (p50/p99) and throughput
with 64 requests in flight. Rounds alternate raw and Bus so drift on a shared
machine hits both alike; the median round is reported.

Targets (issue #2): throughput >= 0.8x raw, p50 latency <= 1.2x raw.

The last column is CPU time per request in the throughput rounds, of the
caller, the responder and nats-server (from ``/proc``, so Linux only): on a
shared machine wall-clock figures drift, CPU per request much less, so it shows
where a change saves. ``--only bus`` measures the Bus alone (for profiling);
``HIVEWIRE_BENCH_PROFILE=<dir>`` writes cProfile data of both processes there.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import nats
import uvloop
from opentelemetry.sdk.trace import TracerProvider

from bench.processes import cpu_seconds
from bus import Bus, Codec, EmbeddedNats, Envelope, Message, NatsSettings, Part, Request, Role

RAW = "bench.raw"
BUS = "bench.bus"
IN_FLIGHT = 64


def sample_message() -> Message:
    """A realistic chat turn: a few hundred bytes of A2A JSON."""
    return Message(
        message_id="4f0c8a6e2b1d4c3a9e7f6d5c4b3a2918",
        role=Role.USER,
        context_id="c0ffee00c0ffee00c0ffee00c0ffee00",
        parts=(
            Part.text_part(
                "My invoice for October shows two charges for the Pro plan. "
                "Can you check whether I was billed twice and refund the duplicate?"
            ),
            Part.data_part({"customer": "cus_8812", "plan": "pro", "locale": "en-GB"}),
        ),
        metadata={"channel": "web", "priority": "normal"},
    )


def settings(url: str) -> NatsSettings:
    return NatsSettings(nats_url=url, _env_file=None)  # type: ignore[call-arg]


async def serve(url: str) -> None:
    """The responder process: serves both subjects until stdin closes."""
    raw = await nats.connect(url)

    async def echo(msg: nats.aio.msg.Msg) -> None:
        # Not msg.respond(): it copies the request's headers into the reply.
        await raw.publish(msg.reply, msg.data)

    await raw.subscribe(RAW, cb=echo)
    await raw.flush()
    bus = await Bus.connect(settings(url), name="bench-responder")

    async def handle(request: Request[Message]) -> Message:
        return request.payload

    await bus.serve(BUS, handle, Message)
    print("ready", flush=True)
    with profiled("responder"):
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await bus.close()
    await raw.close()


@contextmanager
def profiled(name: str) -> Iterator[None]:
    """cProfile the block into ``$HIVEWIRE_BENCH_PROFILE/<name>.prof`` when that variable is set."""
    folder = os.environ.get("HIVEWIRE_BENCH_PROFILE")
    if not folder:
        yield
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        Path(folder).mkdir(parents=True, exist_ok=True)
        profile.dump_stats(Path(folder) / f"{name}.prof")


async def latencies(call: Callable[[], Awaitable[object]], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def throughput(call: Callable[[], Awaitable[object]], count: int) -> float:
    per_worker = count // IN_FLIGHT

    async def worker() -> None:
        for _ in range(per_worker):
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return per_worker * IN_FLIGHT / (time.perf_counter() - started)


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def measure(
    url: str, pids: tuple[int, int], rounds: int, sequential: int, concurrent: int, only: str | None
) -> dict[str, dict[str, float]]:
    message = sample_message()
    raw = await nats.connect(url)
    plain = await Bus.connect(settings(url), name="bench-caller")
    traced = await Bus.connect(settings(url), name="bench-traced", tracer_provider=TracerProvider())
    payload = plain.codec.encode(message)

    async def call_raw() -> object:
        return await raw.request(RAW, payload, timeout=5)

    headers = Envelope.with_timeout(5).to_headers()

    async def call_raw_headers() -> object:
        return await raw.request(RAW, payload, timeout=5, headers=headers)

    async def call_bus() -> object:
        return await plain.request(BUS, message, Message, timeout=5)

    async def call_traced() -> object:
        return await traced.request(BUS, message, Message, timeout=5)

    calls = {
        "raw nats-py": call_raw,
        "raw + same headers": call_raw_headers,
        "Bus": call_bus,
        "Bus + SDK tracing": call_traced,
    }
    if only == "bus":
        calls = {"Bus": call_bus}
    columns = ("p50", "p99", "rps", "cpu caller", "cpu responder", "cpu server")
    results: dict[str, dict[str, list[float]]] = {name: {c: [] for c in columns} for name in calls}
    for call in calls.values():  # warm up connections and decoders
        await latencies(call, 300)
    with profiled("caller"):
        for _ in range(rounds):
            for name, call in calls.items():
                samples = await latencies(call, sequential)
                results[name]["p50"].append(percentile(samples, 50))
                results[name]["p99"].append(percentile(samples, 99))
                before = (time.process_time(), *(cpu_seconds(pid) for pid in pids))
                results[name]["rps"].append(await throughput(call, concurrent))
                after = (time.process_time(), *(cpu_seconds(pid) for pid in pids))
                for column, start, end in zip(columns[3:], before, after, strict=True):
                    results[name][column].append((end - start) / concurrent)
    await traced.close()
    await plain.close()
    await raw.close()
    return {name: {k: statistics.median(v) for k, v in r.items()} for name, r in results.items()}


def report(results: dict[str, dict[str, float]], payload_size: int) -> tuple[float, float]:
    print(f"payload: {payload_size} bytes of A2A JSON; {IN_FLIGHT} in flight for throughput\n")
    print(f"{'':20} {'p50 (ms)':>10} {'p99 (ms)':>10} {'req/s':>10}   CPU µs/req: caller+responder+server")
    for name, r in results.items():
        cpu = [r[c] * 1e6 for c in ("cpu caller", "cpu responder", "cpu server")]
        print(
            f"{name:20} {r['p50'] * 1e3:10.3f} {r['p99'] * 1e3:10.3f} {r['rps']:10.0f}   "
            f"{cpu[0]:.0f}+{cpu[1]:.0f}+{cpu[2]:.0f} = {sum(cpu):.0f}"
        )
    if "raw nats-py" not in results:
        return 0.0, 0.0
    raw, bus = results["raw nats-py"], results["Bus"]
    rps_ratio, p50_ratio = bus["rps"] / raw["rps"], bus["p50"] / raw["p50"]
    print(
        f"\nBus / raw: throughput {rps_ratio:.2f}x (target >= 0.8), "
        f"p50 latency {p50_ratio:.2f}x (target <= 1.2)"
    )
    return rps_ratio, p50_ratio


async def main(args: argparse.Namespace) -> int:
    async with EmbeddedNats(port=0) as server:
        with subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
            [sys.executable, __file__, "--serve", server.url], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        ) as responder:
            assert responder.stdout is not None
            assert responder.stdin is not None
            if responder.stdout.readline().strip() != b"ready":
                raise SystemExit("responder did not start")
            assert server.pid is not None
            pids = (responder.pid, server.pid)
            results = await measure(
                server.url, pids, args.rounds, args.sequential, args.concurrent, args.only
            )
            responder.stdin.close()
            responder.wait(timeout=30)
    rps_ratio, p50_ratio = report(results, len(Codec().encode(sample_message())))
    if args.check and args.only is None and (rps_ratio < 0.8 or p50_ratio > 1.2):
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--serve", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sequential", type=int, default=2000, help="requests per latency round")
    parser.add_argument("--concurrent", type=int, default=20000, help="requests per throughput round")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--only", choices=["bus"], help="measure the Bus alone (for profiling)")
    arguments = parser.parse_args()
    if arguments.serve:
        uvloop.run(serve(arguments.serve))
    else:
        sys.exit(uvloop.run(main(arguments)))
