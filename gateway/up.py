"""``hivewire up``: the whole mesh on this machine, one process per component, with one command.

It runs what an operator runs in production, only all at once: NATS (the
embedded server unless ``HIVEWIRE_NATS_URL`` names one), the knowledge agent,
the agents of the chosen applications (``--app``: the support desk's
``triage`` and ``answer`` by default; the research swarm's ``planner``, two
``analyst`` replicas and ``writer``), and the gateway, each as its own
``hivewire`` process. It seeds each application's knowledge base with its
samples (through the knowledge agent, so there is one writer), keeps all local
state in one data folder (``--data-dir``, default ``.hivewire``), records there
what other commands need to find the mesh (:mod:`bus.local`), prints how to
talk to it, restarts a child that crashes (:mod:`gateway.supervise`), and on
Ctrl-C stops every child cleanly (gateway first, then agents, then NATS).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop
from pydantic import ValidationError

from agents.errors import LocalModelError
from agents.llm.local import LocalModelSettings, default_threads, resolve
from agents.mesh import Mesh
from bus import local
from bus.children import die_with_parent
from bus.client import Bus
from bus.embedded import EmbeddedNats
from bus.settings import describe_error
from gateway import localmodel
from gateway.apps import APPS, App
from gateway.keys import ApiKeys
from gateway.local import TENANT
from gateway.settings import GatewaySettings
from gateway.supervise import Child, describe_exit, stop_all, supervise
from gateway.upbanner import banner, watching
from gateway.uplogs import ChildLogs, child_logs
from knowledge.messages import IngestReply, IngestRequest

__all__ = ["run"]


def _apps(args: argparse.Namespace) -> list[App]:
    return [APPS[name] for name in dict.fromkeys(getattr(args, "app", None) or ["desk"])]


def _targets(apps: list[App]) -> list[str]:
    """Every agent process to start, knowledge once, replicas repeated."""
    targets = dict.fromkeys(t for app in apps for t, replicas in app.agents for _ in range(replicas))
    counts = {t: max(r for app in apps for target, r in app.agents if target == t) for t in targets}
    return [t for t in targets for _ in range(counts[t])]


def run(args: argparse.Namespace) -> int:
    """``hivewire up`` (registered in :mod:`gateway.cli`)."""
    return uvloop.run(_up(args))


# What a restart needs to start a child again is kept with it (gateway.supervise).
_Child = Child


def _say(text: str) -> None:
    print(text, flush=True)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


async def _redis_on_standard_port() -> str | None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", 6379), 0.5)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.readline(), 0.5)
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()
    return "redis://127.0.0.1:6379/0" if answer.startswith(b"+PONG") else None


async def _spawn(
    name: str, args: list[str], env: dict[str, str], logs: ChildLogs, *, metrics: str | None = None
) -> _Child:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bus.cli",
        *logs.args(),
        *args,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=die_with_parent(),
        # Their own session: Ctrl-C reaches `hivewire up` only, which stops the
        # children in order (gateway, agents, NATS) instead of all at once.
        start_new_session=True,
    )
    assert process.stderr is not None
    return _Child(name, process, args, env, metrics=metrics, logs=logs.relay(name, process.stderr))


async def _spawn_agent(target: str, env: dict[str, str], logs: ChildLogs) -> _Child:
    """An agent that serves ``/metrics`` on a port of its own (the banner lists them)."""
    port = localmodel.free_port()
    return await _spawn(
        target.split(":")[1],
        ["agent", "run", target],
        {**env, "HIVEWIRE_METRICS_PORT": str(port)},
        logs,
        metrics=f"http://127.0.0.1:{port}/metrics",
    )


def _settings(args: argparse.Namespace) -> GatewaySettings:
    """The settings from the environment, with ``--data-dir``, ``--port`` and ``--nats-port`` on top."""
    options = {"data_dir": "data_dir", "port": "gateway_port", "nats_port": "nats_embedded_port"}
    overrides: dict[str, Any] = {
        setting: getattr(args, option)
        for option, setting in options.items()
        if getattr(args, option, None) is not None  # 0 is a port too: a free one
    }
    return GatewaySettings(**overrides)


@dataclass
class _Started:
    """What the start-up made, for the clean-up to undo, however far it got."""

    logs: ChildLogs  # how the children log, and the relay of their lines
    children: list[_Child] = field(default_factory=list)
    nats: EmbeddedNats | None = None


async def _up(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
    except ValidationError as exc:
        _say(f"hivewire up: {describe_error(exc)}")
        return 2
    other = local.running(settings.data_dir)
    if other is not None:
        _say(
            f"hivewire up: a mesh already runs from {settings.data_dir} (pid {other.pid}, gateway "
            f"{other.url}); stop it first, or give this one another --data-dir"
        )
        return 1
    started = _Started(logs=child_logs(args))
    stop = asyncio.Event()
    starting = asyncio.ensure_future(_start(args, settings, started))

    def interrupt() -> None:
        # Ctrl-C while starting stops at once (loading a model, waiting for an agent); later, in order.
        stop.set()
        starting.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)
    try:
        try:
            code = await starting
        except asyncio.CancelledError:
            if not stop.is_set():
                raise
            return 0
        if code is not None:
            return code
        logs = started.logs

        async def respawn(name: str, args: list[str], env: dict[str, str]) -> _Child:
            # The same command, environment (its /metrics port) and log relay as before.
            return await _spawn(name, args, env, logs)

        return await supervise(started.children, stop, respawn, _say)
    finally:
        await stop_all(started.children)
        await _drain_logs(started.children)
        if started.nats is not None:
            started.nats.stop()
        local.forget(settings.data_dir, os.getpid())
        _say("stopped")


async def _start(args: argparse.Namespace, settings: GatewaySettings, started: _Started) -> int | None:
    """Start everything, ingest the samples, record the state file and print the banner.

    Returns:
        None once the mesh runs, or the exit code of a start that could not be made.
    """
    began = time.monotonic()
    apps = _apps(args)
    agent, skill = apps[0].entry
    children = started.children
    logs = started.logs
    models = LocalModelSettings()
    wanted: str | None = args.model or models.local_model
    try:
        model_file = resolve(wanted) if wanted else None
    except LocalModelError as exc:
        _say(f"hivewire up: {exc}")
        return 2
    model: localmodel.LocalModel | None = None
    data_dir = settings.data_dir
    _say(f"Data      {data_dir} (NATS data, Chroma, and {local.state_path(data_dir)} for other commands)")
    # NATS: the configured one, or the embedded server.
    if settings.nats_url:
        url = settings.nats_url
        _say(f"NATS      {url} (configured)")
    else:
        port = settings.nats_embedded_port
        if port and not _port_free(settings.nats_embedded_host, port):
            _say(f"NATS      port {port} is taken (another server?); the embedded one takes a free port")
            port = 0
        started.nats = await EmbeddedNats(
            host=settings.nats_embedded_host, port=port, data_dir=settings.nats_data_dir
        ).astart()
        url = started.nats.url
        _say(f"NATS      {url} (embedded, JetStream data in {settings.nats_data_dir})")

    if not _port_free(settings.gateway_host, settings.gateway_port):
        _say(f"hivewire up: port {settings.gateway_port} is in use; choose another with --port")
        return 1

    # Redis: configured, found on its standard port, or none (said plainly).
    redis_url = settings.redis_url or await _redis_on_standard_port()
    if settings.redis_url:
        _say(f"Redis     {settings.redis_url} (configured)")
    elif redis_url:
        _say(f"Redis     {redis_url} (found on the standard port)")
    else:
        _say(
            "Redis     none: cache, history and rate limits are kept in each process. That is fine "
            "on one machine; a deployment with several replicas needs Redis (HIVEWIRE_REDIS_URL)."
        )
    env = {
        **os.environ,
        "HIVEWIRE_NATS_URL": url,
        "HIVEWIRE_DATA_DIR": str(data_dir),
        "HIVEWIRE_GATEWAY_PORT": str(settings.gateway_port),
        "HIVEWIRE_GATEWAY_AGENT": agent,
        "HIVEWIRE_GATEWAY_SKILL": skill,
        # Every process keeps its spans in the span store, for the console's trace waterfalls.
        "OTEL_TRACES_EXPORTER": os.environ.get("OTEL_TRACES_EXPORTER") or "hivewire",
    }
    if model_file is not None:
        threads = models.local_model_threads or default_threads()
        port = localmodel.free_port()
        _say(f"Models    loading {model_file.name} with llama.cpp ({threads} threads) on port {port}...")
        served = await _spawn(
            "model", localmodel.command(model_file, port, threads, models), localmodel.start_env(env), logs
        )
        children.append(served)
        model_url = f"http://127.0.0.1:{port}"
        info = await localmodel.wait_ready(model_url, served.process)
        env = localmodel.agent_env(env, model_url, info)
    elif settings.llm_base_url:
        _say(f"Models    {settings.llm_base_url}")
    else:
        _say(
            "Models    none configured: OFFLINE MODE. Answers are the knowledge base's own sentences, "
            "labelled as such; set HIVEWIRE_LLM_BASE_URL (and HIVEWIRE_LLM_API_KEY) for a model, "
            "or run one here with --model FILE.gguf."
        )
    if redis_url:
        env["HIVEWIRE_REDIS_URL"] = redis_url
    targets = _targets(apps)
    for target in targets:
        children.append(await _spawn_agent(target, env, logs))
    bus = await Bus.connect(settings.model_copy(update={"nats_url": url}), name="hivewire-up")
    try:
        mesh = await Mesh.open(bus, settings)
        key = await _local_key(await ApiKeys.open(bus), data_dir)
        children.append(await _spawn("gateway", ["gateway"], env, logs))
        base = f"http://{settings.gateway_host}:{settings.gateway_port}"
        try:
            await _wait_ready(mesh, base, children, {t.split(":")[1] for t in targets})
        except _StartFailed as exc:
            _say(f"hivewire up: {exc}")
            return 1
        if not args.no_samples:
            for app in apps:
                await _ingest_samples(mesh, app)
    finally:
        await bus.close()
    if model_file is not None:
        # Measured with the mesh idle: the figure a person asking questions will see.
        model = await localmodel.measure(model_url, info, threads)
        _say(f"Models    {model.describe()}")
    state = local.save(
        data_dir,
        local.LocalMesh(
            nats_url=url,
            url=base,
            api_key=key,
            tenant=TENANT,
            pid=os.getpid(),
            data_dir=str(data_dir.resolve()),
        ),
    )
    banner(base, key, state, time.monotonic() - began, apps, children, model, watch=watching(base, children))
    return None


async def _local_key(keys: ApiKeys, data_dir: Path) -> str:
    """The local tenant's key from the last state file if still valid, else a new one."""
    last = local.load(data_dir)
    key = last.api_key if last is not None else None
    if key is not None and await keys.verify(key) == TENANT:
        return key
    key, _ = await keys.create(TENANT, name="hivewire up")
    return key


class _StartFailed(Exception):
    """A child died, or the mesh was not ready in time, while starting."""


async def _wait_ready(mesh: Mesh, base: str, children: list[_Child], wanted: set[str]) -> None:
    """Until every agent is registered and the gateway is ready (or a child died)."""
    deadline = time.monotonic() + 90
    while True:
        for child in children:
            if child.process.returncode is not None:
                raise _StartFailed(f"{child.name} {describe_exit(child.process.returncode)} while starting")
        live = {agent.name for agent in await mesh.registry.agents()}
        if wanted <= live and await asyncio.to_thread(_ready, base):
            return
        if time.monotonic() > deadline:
            raise _StartFailed(f"not ready after 90 s (live agents: {sorted(live)})")
        await asyncio.sleep(0.2)


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


async def _ingest_samples(mesh: Mesh, app: App) -> None:
    files = sorted(app.samples.glob("*.md"))
    caller = mesh.caller(TENANT)
    added = 0
    what = "articles" if app.kb is None else f"documents into the {app.kb!r} knowledge base"
    _say(f"Knowledge ingesting {len(files)} sample {what} (unchanged ones are skipped)...")
    for path in files:
        reply = await caller.call(
            "knowledge",
            "ingest",
            IngestRequest(source=path.name, text=path.read_text(), kb=app.kb),
            IngestReply,
            timeout=120,
        )
        added += reply.added
    kind = "articles" if app.kb is None else f"{app.kb} documents"
    _say(f"Knowledge {len(files)} {kind}, {added} new passages")


async def _drain_logs(children: list[_Child], grace: float = 2.0) -> None:
    """Pass on the children's last log lines (their pipes close as they exit)."""
    relays = [child.logs for child in children if child.logs is not None]
    if relays:
        _, late = await asyncio.wait(relays, timeout=grace)
        for relay in late:
            relay.cancel()
