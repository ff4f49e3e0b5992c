"""Durable task throughput end to end through ``Tasks.submit`` and an agent, against raw JetStream.

Run: ``.venv/bin/python bench/durable_tasks.py`` (add ``--check`` to exit 1 when the target is missed).

It starts the embedded NATS server and, for each task concurrency, two
consumer processes: a raw nats-py one and one ``bench.zoo:noop`` agent (whose
skill returns at once) with ``HIVEWIRE_TASK_CONCURRENCY`` set to it. A client
submits the same number of tasks to each with the same number in flight and
waits until all are done:

* raw: ``js.publish`` (awaiting the PubAck, with a ``Nats-Msg-Id`` as submit
  sets) to a work-queue stream on file storage like ``HW_TASKS``; the consumer
  fetches batches of the concurrency from a durable pull consumer, acks each
  message and publishes a one-line completion notice, which the client counts.
* Hivewire: ``mesh.tasks.submit`` (the ``submitted`` event, then the
  task, awaiting its PubAck); the agent's worker runs each task, records its
  outcome (a compare-and-set), announces it and acks; the client counts the
  ``completed`` status events of the tenant (decoding each event, on a plain
  subscription as the raw notices are counted).

The clock runs from the first submit to the last completion. Rounds alternate
raw and Hivewire so drift on a shared machine hits both alike; the median
round is reported, along with how fast the submits alone went and the CPU
time per task of the client, the consumer (raw process or agent) and
nats-server: on a shared machine it drifts much less than wall-clock figures.

Target (durable tasks issue): Hivewire >= 0.5x raw tasks/s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import nats
import uvloop
from nats.aio.msg import Msg
from nats.js import api

from agents import AgentSettings, Mesh, TaskRequest
from agents.payloads import to_message
from agents.tasks import task_id_for
from bench.processes import agent_processes, cpu_seconds
from bus import Bus, Codec, EmbeddedNats, StreamResponse, TaskState, subjects
from bus.a2a import Role, new_id

RAW_STREAM = "BENCH_RAW"
RAW_SUBJECT = "bench.raw.tasks"
RAW_DONE = "bench.raw.done"
RAW_CONSUMER = "bench-raw"
AGENT = "benchjobs"
SKILL = "done"
TARGET = 0.5


def settings(url: str) -> AgentSettings:
    return AgentSettings(nats_url=url, _env_file=None)  # type: ignore[call-arg]


def raw_payload(codec: Codec, n: int) -> bytes:
    """What a Hivewire submit puts on the tasks stream, so both carry the same bytes."""
    message = to_message(n, role=Role.USER, context_id=new_id())
    request = TaskRequest(
        task_id=task_id_for("bench", AGENT, message.message_id), agent=AGENT, skill=SKILL, message=message
    )
    return codec.encode(request)


async def consume(url: str, batch: int) -> None:
    """The raw consumer process: fetch, ack and report each message until stdin closes."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_consumer(
        RAW_STREAM,
        api.ConsumerConfig(
            durable_name=RAW_CONSUMER,
            filter_subject=RAW_SUBJECT,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=30,
            max_deliver=-1,
            max_ack_pending=-1,
        ),
    )
    sub = await js.pull_subscribe_bind(RAW_CONSUMER, stream=RAW_STREAM)
    stdin_closed = asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    print("ready", flush=True)
    while not stdin_closed.done():
        try:
            msgs = await sub.fetch(batch, timeout=1.0)
        except TimeoutError:  # nats.errors.TimeoutError and the plain one fetch also raises
            continue
        for msg in msgs:
            await msg.ack()
            await nc.publish(RAW_DONE, b"done")
    await nc.close()


@asynccontextmanager
async def raw_consumer(url: str, batch: int) -> AsyncIterator[int]:
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, __file__, "--consume", url, "--batch", str(batch)),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        if (await asyncio.wait_for(process.stdout.readline(), 30)).strip() != b"ready":
            raise SystemExit("raw consumer did not start")
        yield process.pid
    finally:
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def submit_all(submit: Callable[[int], Awaitable[object]], count: int, in_flight: int) -> None:
    """Submit ``count`` tasks with at most ``in_flight`` submits awaiting their acks."""
    numbers = iter(range(count))

    async def submitter() -> None:
        for n in numbers:
            await submit(n)

    await asyncio.gather(*(submitter() for _ in range(in_flight)))


def cpu_now(pids: tuple[int, int]) -> tuple[float, float, float]:
    """CPU seconds so far of this process (the client), the consumer and nats-server."""
    return (time.process_time(), cpu_seconds(pids[0]), cpu_seconds(pids[1]))


async def run(
    submit: Callable[[int], Awaitable[object]],
    done: asyncio.Event,
    count: int,
    in_flight: int,
    pids: tuple[int, int],
) -> tuple[float, float, tuple[float, ...]]:
    """Tasks/s end to end, tasks/s of the submits alone, CPU seconds per task of client, consumer, server."""
    before = cpu_now(pids)
    started = time.perf_counter()
    await submit_all(submit, count, in_flight)
    submitted = time.perf_counter() - started
    await asyncio.wait_for(done.wait(), timeout=60)
    elapsed = time.perf_counter() - started
    cpu = tuple((end - start) / count for start, end in zip(before, cpu_now(pids), strict=True))
    return count / elapsed, count / submitted, cpu


class Counter:
    """Counts completions and wakes the waiter at the expected number."""

    def __init__(self) -> None:
        self.seen = 0
        self.expected = 0
        self.done = asyncio.Event()

    def expect(self, count: int) -> asyncio.Event:
        self.seen, self.expected, self.done = 0, count, asyncio.Event()
        return self.done

    def add(self) -> None:
        self.seen += 1
        if self.seen == self.expected:
            self.done.set()


async def measure(
    url: str, args: argparse.Namespace, concurrency: int, pids: dict[str, tuple[int, int]]
) -> dict[str, dict[str, float]]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    bus = await Bus.connect(settings(url), name="bench-tasks")
    mesh = await Mesh.open(bus, settings(url))
    codec = Codec()

    raw_done = Counter()

    async def on_notice(msg: Msg) -> None:
        raw_done.add()

    await nc.subscribe(RAW_DONE, cb=on_notice)

    async def submit_raw(n: int) -> object:
        return await js.publish(RAW_SUBJECT, raw_payload(codec, n), headers={"Nats-Msg-Id": new_id()})

    hive_done = Counter()
    tenant = f"bench{concurrency}"

    async def on_event(msg: Msg) -> None:
        update = codec.decode(msg.data, StreamResponse).status_update
        if update is not None and update.status.state is TaskState.COMPLETED:
            hive_done.add()

    # Counted like the raw notices, by a plain subscriber: the observer's cost is
    # not the mesh's (a bus service per event would add its dispatch to every count).
    await nc.subscribe(subjects.tenant_events(tenant), cb=on_event)

    async def submit_hivewire(n: int) -> object:
        return await mesh.tasks.submit(tenant, AGENT, SKILL, n)

    kinds = {"raw JetStream": (submit_raw, raw_done), "Hivewire": (submit_hivewire, hive_done)}
    columns = ("e2e", "submit", "cpu client", "cpu consumer", "cpu server")
    results: dict[str, dict[str, list[float]]] = {name: {c: [] for c in columns} for name in kinds}
    for name, (submit, counter) in kinds.items():  # warm up connections, consumers and decoders
        await run(submit, counter.expect(200), 200, args.in_flight, pids[name])
    for _ in range(args.rounds):
        for name, (submit, counter) in kinds.items():
            e2e, submitted, cpu = await run(
                submit, counter.expect(args.tasks), args.tasks, args.in_flight, pids[name]
            )
            for column, value in zip(columns, (e2e, submitted, *cpu), strict=True):
                results[name][column].append(value)
    await bus.close()
    await nc.close()
    return {name: {k: statistics.median(v) for k, v in r.items()} for name, r in results.items()}


async def create_raw_stream(url: str) -> None:
    nc = await nats.connect(url)
    # The same kind of stream as HW_TASKS (file storage, work queue, de-duplication window).
    await nc.jetstream().add_stream(
        api.StreamConfig(
            name=RAW_STREAM,
            subjects=[RAW_SUBJECT],
            retention=api.RetentionPolicy.WORK_QUEUE,
            storage=api.StorageType.FILE,
            duplicate_window=settings(url).task_dedup_window,
            max_age=settings(url).task_retention,
        )
    )
    await nc.close()


def report(results: dict[int, dict[str, dict[str, float]]], args: argparse.Namespace) -> float:
    print(
        f"{args.tasks} tasks per round, {args.in_flight} submits in flight; median of {args.rounds} rounds\n"
    )
    print(f"{'':30} {'tasks/s':>10} {'submit/s':>10} {'x raw':>7}   CPU µs/task: client+consumer+server")
    worst = float("inf")
    for concurrency, by_kind in results.items():
        raw = by_kind["raw JetStream"]["e2e"]
        for name, r in by_kind.items():
            label = f"{name}, concurrency {concurrency}"
            cpu = [r[c] * 1e6 for c in ("cpu client", "cpu consumer", "cpu server")]
            print(
                f"{label:30} {r['e2e']:10.0f} {r['submit']:10.0f} {r['e2e'] / raw:7.2f}   "
                f"{cpu[0]:.0f}+{cpu[1]:.0f}+{cpu[2]:.0f} = {sum(cpu):.0f}"
            )
        worst = min(worst, by_kind["Hivewire"]["e2e"] / raw)
    print(f"\nHivewire / raw: {worst:.2f}x at worst (target >= {TARGET})")
    return worst


async def main(args: argparse.Namespace) -> int:
    results = {}
    async with EmbeddedNats(port=0) as server:
        await create_raw_stream(server.url)
        for concurrency in args.concurrency:
            async with (
                raw_consumer(server.url, concurrency) as consumer,
                agent_processes(
                    server.url, ["bench.zoo:noop"], HIVEWIRE_TASK_CONCURRENCY=str(concurrency)
                ) as agent,
            ):
                assert server.pid is not None
                pids = {"raw JetStream": (consumer, server.pid), "Hivewire": (agent[0], server.pid)}
                results[concurrency] = await measure(server.url, args, concurrency, pids)
    worst = report(results, args)
    return 1 if args.check and worst < TARGET else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--consume", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=16, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each (the median is reported)")
    parser.add_argument("--tasks", type=int, default=2000, help="tasks per round")
    parser.add_argument("--in-flight", type=int, default=64, help="submits awaiting their acks at once")
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(c) for c in s.split(",")],
        default=[16, 32],
        help="comma-separated HIVEWIRE_TASK_CONCURRENCY values to try (and raw fetch batches)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    arguments = parser.parse_args()
    if arguments.consume:
        uvloop.run(consume(arguments.consume, arguments.batch))
    else:
        sys.exit(uvloop.run(main(arguments)))
