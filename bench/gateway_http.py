"""The gateway over HTTP: skill calls against a bare ASGI endpoint, time to first token, 1,000 open streams.

Run: ``.venv/bin/python bench/gateway_http.py`` (add ``--check`` to exit 1 when a target is missed,
``--profile-gateway FILE`` to run the gateway under cProfile and write its stats to FILE).

Everything runs on loopback, each server in its own process: the embedded
NATS server, a throwaway redis-server (or ``REDIS_URL``), the echo and
assistant agents (``hivewire agent run tests.zoo:...``), the gateway
(``hivewire gateway``: uvicorn, uvloop, httptools) and, for comparison, a bare
ASGI app on the same server stack that reads the JSON body and sends it back.
The tests' OpenAI-compatible server runs in a thread of this process. Three
measurements, in the same run:

1. Throughput. ``wrk`` (Debian's package; a Python client is the bottleneck
   long before the server is) sends ``POST /v1/agents/echo/skills/shout`` with
   ``{"input": "hi"}`` over 64 connections, first to the bare endpoint, then
   through the gateway, the bus and the echo agent; both after a warm-up.
   Requests/s, p50 and p99 from wrk's ``--latency`` output, and the CPU each
   process used meanwhile (the machine's cores are shared by all of them).
   Between the two, the bare endpoint plus one bus request to the echo agent
   ("bare + bus", with ``Bus.request``): what "HTTP -> bus -> agent -> HTTP"
   costs before a gateway does anything of its own (no key, limiter, metrics
   or framework). A shorter run of ``GET /healthz`` shows what the
   gateway's HTTP stack alone costs (Starlette, its middleware, and matching
   the API's routes, which come first), without key, rate limiter or bus.
2. Time to first token. With the model server answering after 100 ms, a
   streamed turn of the assistant's ``chat`` skill (``Accept:
   text/event-stream``), timed from sending the request to the first
   ``event: artifact``; one new conversation per sample.
3. Open streams. 1,000 ``GET /v1/conversations/{id}/events?follow=true``
   streams (raw sockets) held by the one gateway process: each must answer 200
   with its ``: hivewire`` comment and stay open; the gateway's resident
   memory before and while holding them; a skill call's latency meanwhile; the
   JetStream consumers the server keeps for them; and a turn sent into a few of
   the conversations must reach their followers.

Targets (issue #6): gateway >= 0.5x the bare endpoint's requests/s, p50 time
to first token < 150 ms, 1,000 streams held without errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import nats
import uvloop

from agents import AgentSettings
from bench import processes
from bench.processes import REPO, agent_processes
from bus import Bus, EmbeddedNats, new_id
from bus.a2a import Message
from bus.envelope import Envelope
from gateway.keys import ApiKeys
from tests.openai_server import OpenAIServer
from tests.redis_server import RedisServer

HOST = "127.0.0.1"
SKILL_PATH = "/v1/agents/echo/skills/shout"
BODY = b'{"input": "hi"}'
TARGET_RATIO = 0.5
TARGET_TTFT = 0.150
LLM_LATENCY = 0.1
NOFILE = 8192

WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = '%(body)s'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
"""


# The bare endpoint: the least an ASGI app on this server stack can do with the same request.

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def bare_app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Read the JSON body and send it back."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    body = await _body(receive)
    await _reply(send, msgspec.json.encode(msgspec.json.decode(body)) if body else b"{}")


class BusFloor:
    """The bare endpoint plus the one step the measured path cannot skip: a bus request.

    Per HTTP request it sends a prepared A2A message to the echo agent with
    ``Bus.request`` (the cheapest request this project has: a counter and one
    wildcard inbox, cheaper than nats-py's own ``request``) and sends the typed
    reply back: no key, no limiter, no metrics, no framework. What it costs over
    the bare endpoint is the least a gateway pays for "HTTP -> bus -> agent -> HTTP".
    """

    def __init__(self, nats_url: str, tenant: str) -> None:
        from agents.payloads import to_message
        from bus import subjects
        from bus.a2a import Role

        self._url = nats_url
        self._tenant = tenant
        self._subject = subjects.agent_request(tenant, "echo", "shout")
        self._message = to_message("hi", role=Role.USER, context_id=new_id())
        self._bus: Bus | None = None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, self._connect, self._close)
            return
        assert self._bus is not None
        body = await _body(receive)
        if body:
            msgspec.json.decode(body)
        envelope = Envelope(tenant=self._tenant)
        reply = await self._bus.request(self._subject, self._message, Message, envelope=envelope, timeout=30)
        await _reply(send, msgspec.json.encode(reply))

    async def _connect(self) -> None:
        self._bus = await Bus.connect(AgentSettings(_env_file=None, nats_url=self._url))  # type: ignore[call-arg]

    async def _close(self) -> None:
        if self._bus is not None:
            await self._bus.close()


async def _nothing() -> None:
    return None


async def _lifespan(
    receive: Receive,
    send: Send,
    start: Callable[[], Awaitable[None]] = _nothing,
    stop: Callable[[], Awaitable[None]] = _nothing,
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await stop()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _body(receive: Receive) -> bytes:
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


async def _reply(send: Send, out: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": out})


def serve_bare(port: int, app: Any = bare_app) -> None:
    import uvicorn

    uvicorn.run(
        app,
        host=HOST,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
    )


# Processes, their CPU time and memory.


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < NOFILE:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(NOFILE, hard), hard))


def cpu_seconds_if_alive(pid: int) -> float | None:
    """User + system CPU time of ``pid`` so far (``None`` when it cannot be read)."""
    try:
        return processes.cpu_seconds(pid)
    except OSError:
        return None


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / tick, sum(values) / tick


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class CpuMeter:
    """CPU used by named processes (and the machine) over a phase, as a share of one core."""

    pids: dict[str, int]
    _start: dict[str, float] = field(default_factory=dict)
    _machine: tuple[float, float] = (0.0, 0.0)
    _time: float = 0.0

    def start(self) -> None:
        self._start = {n: c for n, p in self.pids.items() if (c := cpu_seconds_if_alive(p)) is not None}
        self._start["load generator"] = _rusage(resource.RUSAGE_CHILDREN)
        self._start["this process"] = _rusage(resource.RUSAGE_SELF)
        self._machine = machine_busy()
        self._time = time.perf_counter()

    def stop(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self._time
        used = {}
        for name, before in self._start.items():
            if name == "load generator":
                after: float | None = _rusage(resource.RUSAGE_CHILDREN)
            elif name == "this process":
                after = _rusage(resource.RUSAGE_SELF)
            else:
                after = cpu_seconds_if_alive(self.pids[name])
            if after is not None:
                used[name] = (after - before) / elapsed
        busy, total = machine_busy()
        cores = os.cpu_count() or 1
        machine = (busy - self._machine[0]) / max(1e-9, total - self._machine[1]) * cores
        used["other processes"] = max(0.0, machine - sum(used.values()))
        used["machine"] = machine
        return used


def _rusage(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def server_process(
    command: list[str], env: dict[str, str], log: Path, *, stop: signal.Signals = signal.SIGTERM
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` (its output to ``log``) until the block ends; ``stop``, then SIGKILL."""

    def prepare() -> None:
        raise_nofile()

    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=prepare
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(stop)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"{url} exited with {process.returncode}:\n{_tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                response = await client.get(url)
                if response.status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise SystemExit(f"{url} was not ready within {timeout}s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


# 1. Throughput.


@dataclass
class Load:
    rps: float
    p50: float
    p99: float
    requests: int
    errors: int
    cpu: dict[str, float] = field(default_factory=dict)


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> Load:
    def find(pattern: str) -> re.Match[str] | None:
        return re.search(pattern, output, re.MULTILINE)

    rps = find(r"^Requests/sec:\s+([\d.]+)")
    p50, p99 = find(r"^\s+50%\s+(\S+)"), find(r"^\s+99%\s+(\S+)")
    total = find(r"^\s+(\d+) requests in")
    if not (rps and p50 and p99 and total):
        raise SystemExit(f"could not read wrk's output:\n{output}")
    errors = 0
    if non_2xx := find(r"Non-2xx or 3xx responses: (\d+)"):
        errors += int(non_2xx.group(1))
    if socket_errors := find(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"):
        errors += sum(int(g) for g in socket_errors.groups())
    return Load(
        float(rps.group(1)), _seconds(p50.group(1)), _seconds(p99.group(1)), int(total.group(1)), errors
    )


async def run_wrk(url: str, script: Path | None, connections: int, duration: float) -> Load:
    """``wrk`` against ``url``: the requests ``script`` writes, or plain GETs without one."""
    process = await asyncio.create_subprocess_exec(
        "wrk",
        "-t1",  # one thread keeps up with these servers and leaves them the other core
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "5s",
        "--latency",
        *(["-s", str(script)] if script is not None else []),
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), duration + 30)
    return parse_wrk(out.decode())


async def python_load(url: str, key: str | None, connections: int, duration: float) -> Load:
    """The fallback when wrk is missing: raw HTTP/1.1 keep-alive connections in another process.

    It POSTs the body with ``key``, or sends plain GETs when ``key`` is ``None``.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--load",
        url,
        *(["--key", key] if key is not None else []),
        "--connections",
        str(connections),
        "--duration",
        str(duration),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), duration + 30)
    found = json.loads(out)
    return Load(found["rps"], found["p50"], found["p99"], found["requests"], found["errors"])


async def generate_load(url: str, key: str | None, connections: int, duration: float) -> None:
    """The fallback load generator's process: prints its figures as JSON."""
    scheme_host, _, path = url.partition("//")[2].partition("/")
    host, _, port = scheme_host.partition(":")
    if key is None:
        request = f"GET /{path} HTTP/1.1\r\nHost: {scheme_host}\r\n\r\n".encode()
    else:
        request = (
            f"POST /{path} HTTP/1.1\r\nHost: {scheme_host}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {key}\r\nContent-Length: {len(BODY)}\r\n\r\n"
        ).encode() + BODY
    samples: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + duration

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            samples.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    samples.sort()
    print(
        json.dumps(
            {
                "rps": len(samples) / elapsed,
                "p50": samples[len(samples) // 2],
                "p99": samples[int(len(samples) * 0.99)],
                "requests": len(samples),
                "errors": errors,
            }
        )
    )


# 2. Time to first token.


async def first_token(client: httpx.AsyncClient, samples: int) -> list[float]:
    """Seconds from sending a streamed turn to its first ``event: artifact``, one conversation each."""
    found = []
    for _ in range(samples):
        created = await client.post("/v1/conversations", json={"agent": "assistant", "skill": "chat"})
        cid = created.raise_for_status().json()["id"]
        started = time.perf_counter()
        first = None
        async with client.stream(
            "POST",
            f"/v1/conversations/{cid}/messages",
            json={"text": "How do I enable two-factor authentication?"},
            headers={"Accept": "text/event-stream"},
        ) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if first is None and line == "event: artifact":
                    first = time.perf_counter() - started
        if first is None:
            raise SystemExit(f"the turn of conversation {cid} streamed no token")
        found.append(first)
    return found


async def model_first_token(base_url: str, samples: int) -> list[float]:
    """The same, straight from the model server: the floor under the gateway's figure."""
    found = []
    body = {"model": "big", "stream": True, "messages": [{"role": "user", "content": "Hello there"}]}
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        for _ in range(samples):
            started = time.perf_counter()
            async with client.stream("POST", "/chat/completions", json=body) as response:
                first = None
                async for line in response.aiter_lines():
                    if first is None and line.startswith("data: "):
                        first = time.perf_counter() - started
            assert first is not None
            found.append(first)
    return found


# 3. Open streams.


@dataclass
class Streams:
    opened: int = 0
    create_failed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    open_seconds: float = 0.0
    closed_early: int = 0
    rss_before: float = 0.0
    rss_holding: float = 0.0
    rss_per_stream_kib: float = 0.0
    call_p50: float = 0.0
    call_p50_idle: float = 0.0
    relayed: int = 0
    relay_sample: int = 0
    still_open_after_turn: int = 0
    consumers: dict[str, int] = field(default_factory=dict)
    turn_failed: list[str] = field(default_factory=list)


class Follower:
    """One raw-socket SSE client following a conversation's events."""

    def __init__(self, cid: str) -> None:
        self.cid = cid
        self.received = b""
        self.closed = False
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.StreamReader | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self, port: int, key: str, timeout: float) -> None:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
        self._reader, self._writer = reader, writer
        writer.write(
            f"GET /v1/conversations/{self.cid}/events?follow=true HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
        if b"text/event-stream" not in head:
            raise RuntimeError("not an event stream")
        while b": hivewire\n\n" not in self.received:
            chunk = await asyncio.wait_for(reader.read(4096), timeout)
            if not chunk:
                raise RuntimeError("closed before the : hivewire comment")
            self.received += chunk
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        assert self._reader is not None
        while chunk := await self._reader.read(4096):
            self.received += chunk
            if self.received.endswith(b"\r\n0\r\n\r\n"):  # the last chunk: the response ended
                break
        self.closed = True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()


async def call_latency(client: httpx.AsyncClient, count: int) -> float:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        (await client.post(SKILL_PATH, json={"input": "hi"})).raise_for_status()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def consumers(nats_url: str) -> dict[str, int]:
    """The JetStream consumers on each stream now (each is state the server keeps, and counts)."""
    nc = await nats.connect(nats_url)
    try:
        return {
            info.config.name or "?": info.state.consumer_count for info in await nc.jetstream().streams_info()
        }
    finally:
        await nc.close()


async def hold_streams(
    client: httpx.AsyncClient, port: int, key: str, gateway_pid: int, count: int, hold: float, nats_url: str
) -> Streams:
    result = Streams()
    gate = asyncio.Semaphore(32)

    async def create() -> str | None:
        async with gate:
            try:
                created = await client.post("/v1/conversations", json={"agent": "echo", "skill": "shout"})
            except httpx.HTTPError as exc:  # e.g. the server closed the connection after a 500
                result.create_failed.append(f"{type(exc).__name__}: {exc}")
                return None
        if created.status_code != 201:
            result.create_failed.append(f"{created.status_code} {created.text[:300]}")
            return None
        return str(created.json()["id"])

    cids = [cid for cid in await asyncio.gather(*(create() for _ in range(count))) if cid is not None]
    result.call_p50_idle = await call_latency(client, 50)
    result.rss_before = rss_mib(gateway_pid)
    followers = [Follower(cid) for cid in cids]

    async def open_one(follower: Follower) -> bool:
        async with gate:
            try:
                await follower.open(port, key, timeout=20)
            except (OSError, RuntimeError, TimeoutError, asyncio.IncompleteReadError) as exc:
                result.failed.append(f"{type(exc).__name__}: {exc}")
                return False
            return True

    started = time.perf_counter()
    opened = await asyncio.gather(*(open_one(f) for f in followers))
    result.open_seconds = time.perf_counter() - started
    result.opened = sum(opened)
    try:
        deadline = time.perf_counter() + hold
        rss = [rss_mib(gateway_pid)]
        result.call_p50 = await call_latency(client, 50)
        while time.perf_counter() < deadline:
            await asyncio.sleep(min(1.0, max(0.0, deadline - time.perf_counter())))
            rss.append(rss_mib(gateway_pid))
        result.rss_holding = max(rss)
        result.rss_per_stream_kib = (result.rss_holding - result.rss_before) * 1024 / max(1, result.opened)
        live = [f for f, ok in zip(followers, opened, strict=True) if ok and not f.closed]
        result.closed_early = sum(1 for f, ok in zip(followers, opened, strict=True) if ok and f.closed)
        # The streams are live, not just open: a turn sent into a few conversations reaches their followers.
        sample = live[:: max(1, len(live) // 20)][:20]
        result.relay_sample = len(sample)
        result.consumers = await consumers(nats_url)
        marks = {f.cid: len(f.received) for f in sample}

        async def turn(follower: Follower) -> None:
            try:
                async with client.stream(
                    "POST",
                    f"/v1/conversations/{follower.cid}/messages",
                    json={"text": "ping"},
                    headers={"Accept": "text/event-stream"},
                ) as response:
                    if response.status_code != 200:
                        result.turn_failed.append(
                            f"{response.status_code} {(await response.aread())[:200]!r}"
                        )
                    async for _ in response.aiter_bytes():
                        pass
            except httpx.HTTPError as exc:
                result.turn_failed.append(f"{type(exc).__name__}: {exc}")

        await asyncio.gather(*(turn(f) for f in sample))
        await asyncio.sleep(0.5)
        result.relayed = sum(1 for f in sample if b"event: status" in f.received[marks[f.cid] :])
        result.still_open_after_turn = sum(1 for f in sample if not f.closed)
    finally:
        await asyncio.gather(*(f.close() for f in followers))
    return result


# The run.


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


@contextlib.asynccontextmanager
async def redis_url() -> AsyncIterator[str]:
    if url := os.environ.get("REDIS_URL"):
        yield url
    else:
        with RedisServer() as server:
            yield server.url


def redis_pid(url: str) -> int | None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        pid = int(client.info("server")["process_id"])
    finally:
        client.close()
    return pid if Path(f"/proc/{pid}").exists() else None


async def main(args: argparse.Namespace) -> int:
    raise_nofile()
    wrk = shutil.which("wrk")
    tenant = f"bench{new_id()[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix="hivewire-bench-gateway-"))
    try:
        async with EmbeddedNats(port=0) as nats_server, redis_url() as redis:
            with OpenAIServer() as model:
                env = {
                    **os.environ,
                    "PYTHONPATH": os.pathsep.join(
                        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
                    ),
                    "HIVEWIRE_NATS_URL": nats_server.url,
                    "HIVEWIRE_REDIS_URL": redis,
                    "HIVEWIRE_LLM_BASE_URL": model.url,
                    "HIVEWIRE_LLM_API_KEY": "bench",
                }
                agent_env = {
                    k: env[k] for k in ("HIVEWIRE_REDIS_URL", "HIVEWIRE_LLM_BASE_URL", "HIVEWIRE_LLM_API_KEY")
                }
                async with agent_processes(
                    nats_server.url, ["tests.zoo:echo", "tests.zoo:assistant"], **agent_env
                ) as agent_pids:
                    bus = await Bus.connect(AgentSettings(_env_file=None, nats_url=nats_server.url))  # type: ignore[call-arg]
                    key, _ = await (await ApiKeys.open(bus)).create(tenant, name="bench")
                    await bus.close()
                    gateway_port, bare_port = free_port(), free_port()
                    # Only the rate is lifted: the daily token budget keeps its default, and its check.
                    limits = {tenant: {"rate": 1e6, "burst": 1_000_000}}
                    gateway_env = {
                        **env,
                        "HIVEWIRE_GATEWAY_TENANT_LIMITS": json.dumps(limits),
                        "HIVEWIRE_GATEWAY_TIMEOUT": "30",
                    }
                    profile = ["-m", "cProfile", "-o", args.profile_gateway] if args.profile_gateway else []
                    gateway_cmd = [
                        sys.executable,
                        *profile,
                        "-m",
                        "bus.cli",
                        "--log-level",
                        "WARNING",
                        "gateway",
                    ]
                    gateway_log, bare_log = workdir / "gateway.log", workdir / "bare.log"
                    floor_port, floor_log = free_port(), workdir / "floor.log"
                    floor_cmd = [
                        sys.executable,
                        __file__,
                        "--floor",
                        str(floor_port),
                        nats_server.url,
                        tenant,
                    ]
                    with (
                        server_process(
                            [*gateway_cmd, "--host", HOST, "--port", str(gateway_port)],
                            gateway_env,
                            gateway_log,
                            # uvicorn re-raises SIGTERM after its shutdown, which would kill cProfile
                            # before it writes; SIGINT ends in KeyboardInterrupt, and cProfile writes.
                            stop=signal.SIGINT if args.profile_gateway else signal.SIGTERM,
                        ) as gateway,
                        server_process(
                            [sys.executable, __file__, "--bare", str(bare_port)], env, bare_log
                        ) as bare,
                        server_process(floor_cmd, env, floor_log) as floor,
                    ):
                        gateway_url, bare_url = f"http://{HOST}:{gateway_port}", f"http://{HOST}:{bare_port}"
                        floor_url = f"http://{HOST}:{floor_port}"
                        await wait_ready(gateway_url + "/readyz", gateway, gateway_log)
                        await wait_ready(bare_url + "/", bare, bare_log)
                        await wait_ready(floor_url + "/", floor, floor_log)
                        pids = {
                            "gateway": gateway.pid,
                            "bare": bare.pid,
                            "bare + bus": floor.pid,
                            "echo agent": agent_pids[0],
                            "nats-server": nats_server.pid or 0,
                        }
                        if (pid := redis_pid(redis)) is not None:
                            pids["redis"] = pid
                        results = await measure(
                            args,
                            wrk,
                            key,
                            gateway_url,
                            bare_url,
                            floor_url,
                            model,
                            pids,
                            workdir,
                            gateway_log,
                            nats_server.url,
                        )
                        crashed = gateway.poll() is not None
                    gateway_out = gateway_log.read_bytes()
    except BaseException:
        print(f"the gateway's log is kept in {workdir / 'gateway.log'}", file=sys.stderr)
        raise
    results["crashed"] = crashed
    results["logged"] = {
        phase: logged_errors(gateway_out[start:end].decode(errors="replace"))
        for phase, (start, end) in results["log_marks"].items()
    }
    ok = report(args, results, wrk)
    if results["errors_logged"] or results["crashed"]:
        print(f"\nthe gateway's log is kept in {workdir / 'gateway.log'}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok or not args.check else 1


async def measure(
    args: argparse.Namespace,
    wrk: str | None,
    key: str,
    gateway_url: str,
    bare_url: str,
    floor_url: str,
    model: OpenAIServer,
    pids: dict[str, int],
    workdir: Path,
    gateway_log: Path,
    nats_url: str,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    marks: dict[str, tuple[int, int]] = {}
    results["log_marks"] = marks

    @contextlib.contextmanager
    def phase(name: str) -> Iterator[None]:
        start = gateway_log.stat().st_size
        yield
        marks[name] = (start, gateway_log.stat().st_size)

    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=gateway_url, headers=headers, timeout=30) as client:
        check = await client.post(SKILL_PATH, content=BODY, headers={"Content-Type": "application/json"})
        if check.status_code != 200 or check.json()["output"] != "HI":
            raise SystemExit(f"the gateway does not answer the skill call: {check.status_code} {check.text}")
        async with httpx.AsyncClient(timeout=5) as bare_client:
            echoed = await bare_client.post(bare_url + SKILL_PATH, content=BODY)
            assert echoed.json() == {"input": "hi"}, echoed.text

        # 1. Throughput: warm both up, then measure each with the other idle.
        script = workdir / "post.lua"
        script.write_text(WRK_SCRIPT % {"body": BODY.decode(), "key": key})

        async def load(url: str, duration: float, *, post: bool = True) -> Load:
            path = SKILL_PATH if post else "/healthz"
            if wrk is not None:
                return await run_wrk(url + path, script if post else None, args.connections, duration)
            return await python_load(url + path, key if post else None, args.connections, duration)

        with phase("throughput"):
            for url in (bare_url, floor_url, gateway_url):
                await load(url, args.warmup)
            meter = CpuMeter(pids)
            for name, url in (("bare", bare_url), ("floor", floor_url), ("gateway", gateway_url)):
                meter.start()
                results[name] = await load(url, args.duration)
                results[name].cpu = meter.stop()
            # Where the gateway's time goes: its HTTP stack alone (Starlette, the tracing
            # middleware) on a route that needs no key, no limiter and no bus.
            meter.start()
            results["healthz"] = await load(gateway_url, args.duration / 2, post=False)
            results["healthz"].cpu = meter.stop()
            await asyncio.sleep(1.0)  # requests wrk left queued are dropped (and logged) in this phase

        # 2. Time to first token.
        with phase("first token"):
            model.latency = LLM_LATENCY
            results["model_ttft"] = await model_first_token(model.url, 10)
            await first_token(client, 3)
            results["ttft"] = await first_token(client, args.samples)
            model.latency = 0.0

        # 3. Open streams.
        with phase("open streams"):
            results["streams"] = await hold_streams(
                client,
                int(gateway_url.rsplit(":", 1)[1]),
                key,
                pids["gateway"],
                args.streams,
                args.hold,
                nats_url,
            )
            await asyncio.sleep(0.5)  # what closing the streams logs
    return results


def logged_errors(log: str) -> dict[str, int]:
    """The gateway's ERROR records in ``log``, counted by the exception that ended each traceback."""
    kinds: dict[str, int] = {}
    records = log.count(" ERROR ")
    for line in log.splitlines():
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Disconnect|Exit|Interrupt)\b", line):
            kind = line[:160]
            kinds[kind] = kinds.get(kind, 0) + 1
    if records and not kinds:
        kinds["(no traceback)"] = records
    return kinds


def report(args: argparse.Namespace, results: dict[str, Any], wrk: str | None) -> bool:
    bare: Load = results["bare"]
    gateway: Load = results["gateway"]
    generator = (
        f"wrk ({wrk}, 1 thread)" if wrk else "a Python load generator in its own process (wrk missing)"
    )
    print(
        f"1. POST {SKILL_PATH} {BODY.decode()}: {args.connections} connections, {args.duration:g} s "
        f"each after {args.warmup:g} s warm-up, load from {generator}; {os.cpu_count()} cores\n"
    )
    print(f"{'':28} {'req/s':>9} {'p50 (ms)':>9} {'p99 (ms)':>9} {'requests':>9} {'errors':>7}")
    healthz: Load = results["healthz"]
    floor: Load = results["floor"]
    rows = (
        ("bare ASGI echo", bare),
        ("bare + one bus request", floor),
        ("gateway -> bus -> echo", gateway),
        ("gateway GET /healthz", healthz),
    )
    for name, load in rows:
        print(
            f"{name:28} {load.rps:9.0f} {load.p50 * 1e3:9.2f} {load.p99 * 1e3:9.2f} "
            f"{load.requests:9d} {load.errors:7d}"
        )
    for name, load in (("bare", bare), ("bare + bus", floor), ("gateway", gateway), ("healthz", healthz)):
        shares = ", ".join(f"{n} {v:.2f}" for n, v in load.cpu.items() if v >= 0.005)
        print(f"  CPU (cores) during {name}: {shares}")
    ratio = gateway.rps / bare.rps
    print(
        f"  throughput against the bare endpoint: bare + one bus request {floor.rps / bare.rps:.2f}x, "
        f"gateway {ratio:.2f}x (the gateway is {gateway.rps / floor.rps:.2f}x of bare + bus)"
    )
    per_request = [
        f"{label} {load.cpu.get(process, 0.0) / max(load.rps, 1e-9) * 1e6:.0f} µs"
        for label, load, process in (
            ("bare", bare, "bare"),
            ("bare + bus", floor, "bare + bus"),
            ("gateway", gateway, "gateway"),
            ("gateway /healthz", healthz, "gateway"),
        )
    ]
    print("  CPU per request, in the serving process: " + ", ".join(per_request))
    ttft, model_ttft = results["ttft"], results["model_ttft"]
    ttft_p50, ttft_p90 = percentile(ttft, 50), percentile(ttft, 90)
    streams: Streams = results["streams"]
    print(f"\n2. Time to first token, model server at {LLM_LATENCY * 1e3:.0f} ms, {len(ttft)} turns")
    print(
        f"  through the gateway: p50 {ttft_p50 * 1e3:.1f} ms, p90 {ttft_p90 * 1e3:.1f} ms "
        f"(model server alone: p50 {percentile(model_ttft, 50) * 1e3:.1f} ms)"
    )
    print(f"\n3. {args.streams} open event streams (?follow=true), held {args.hold:g} s")
    print(f"  conversations created: {args.streams - len(streams.create_failed)} of {args.streams}")
    for reason in sorted(set(streams.create_failed))[:5]:
        print(f"    {streams.create_failed.count(reason)} x {reason}")
    print(
        f"  opened: {streams.opened} in {streams.open_seconds:.1f} s; failed to open: {len(streams.failed)}"
    )
    for reason in sorted(set(streams.failed))[:5]:
        print(f"    {streams.failed.count(reason)} x {reason}")
    print(f"  closed while held: {streams.closed_early}")
    busiest = sorted(streams.consumers.items(), key=lambda item: -item[1])[:3]
    print("  JetStream consumers while holding: " + ", ".join(f"{n} {c}" for n, c in busiest))
    print(
        f"  gateway RSS: {streams.rss_before:.1f} MiB before, {streams.rss_holding:.1f} MiB holding "
        f"({streams.rss_per_stream_kib:.0f} KiB per stream)"
    )
    print(
        f"  skill call p50 (one at a time): {streams.call_p50_idle * 1e3:.2f} ms idle, "
        f"{streams.call_p50 * 1e3:.2f} ms while holding"
    )
    print(
        f"  a turn sent into {streams.relay_sample} of the conversations reached {streams.relayed} "
        f"followers; {streams.still_open_after_turn} of those streams stayed open after the turn ended "
        "(follow=true is documented to keep them open)"
    )
    for reason in sorted(set(streams.turn_failed))[:3]:
        print(f"    turn failed: {streams.turn_failed.count(reason)} x {reason[:200]}")
    state = "CRASHED" if results["crashed"] else "alive at the end"
    print(f"\nThe gateway process: {state}; errors it logged (by exception):")
    for name, kinds in results["logged"].items():
        found = ", ".join(f"{kind} x{n}" for kind, n in sorted(kinds.items())) or "none"
        print(f"  during {name}: {found}")
    results["errors_logged"] = sum(sum(kinds.values()) for kinds in results["logged"].values())
    streams_ok = (
        streams.opened == args.streams
        and not streams.create_failed
        and not streams.failed
        and streams.closed_early == 0
        and streams.relayed == streams.relay_sample
        and not results["logged"]["open streams"]
        and not results["crashed"]
    )
    throughput_ok = ratio >= TARGET_RATIO and gateway.errors == 0
    ttft_ok = ttft_p50 < TARGET_TTFT
    print("\nTargets (issue #6):")
    print(f"  gateway / bare throughput {ratio:.2f}x (target >= {TARGET_RATIO}): {verdict(throughput_ok)}")
    print(f"  time to first token p50 {ttft_p50 * 1e3:.0f} ms (target < 150 ms): {verdict(ttft_ok)}")
    print(
        f"  {args.streams} streams held without errors ({streams.opened} open, "
        f"{len(streams.create_failed) + len(streams.failed) + streams.closed_early} errors): "
        f"{verdict(streams_ok)}"
    )
    return throughput_ok and ttft_ok and streams_ok


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--floor", nargs=3, metavar=("PORT", "NATS_URL", "TENANT"), help=argparse.SUPPRESS)
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections (default 64)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured load phase")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per endpoint")
    parser.add_argument("--samples", type=int, default=30, help="streamed turns timed")
    parser.add_argument("--streams", type=int, default=1000, help="event streams held open")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds the streams are held")
    parser.add_argument("--profile-gateway", metavar="FILE", help="run the gateway under cProfile into FILE")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    arguments = parser.parse_args()
    if arguments.bare:
        serve_bare(arguments.bare)
    elif arguments.floor:
        port, nats_url, tenant = arguments.floor
        serve_bare(int(port), BusFloor(nats_url, tenant))
    elif arguments.load:
        uvloop.run(generate_load(arguments.load, arguments.key, arguments.connections, arguments.duration))
    else:
        sys.exit(uvloop.run(main(arguments)))
