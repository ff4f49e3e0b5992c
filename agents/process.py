"""One agent, one OS process: load the agent, connect, serve until SIGTERM, drain, exit 0."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import signal
import sys
from pathlib import Path
from types import ModuleType

from agents.agent import Agent
from agents.errors import AgentLoadError
from agents.resources import Resources
from agents.runtime import AgentRuntime
from agents.settings import AgentSettings
from bus.client import Bus
from bus.telemetry import Telemetry

__all__ = ["load_agent", "serve_agent"]

log = logging.getLogger(__name__)


def load_agent(target: str) -> Agent:
    """Import ``MODULE:ATTR`` (or ``path/to/file.py:ATTR``) and return the :class:`Agent` found there.

    Raises:
        AgentLoadError: the module or attribute is missing, or is not an agent.
    """
    module_name, sep, attr = target.rpartition(":")
    if not sep or not module_name or not attr:
        raise AgentLoadError(target, "expected MODULE:ATTR or FILE.py:ATTR, e.g. myagents.greeter:agent")
    try:
        module = (
            _import_file(module_name) if module_name.endswith(".py") else importlib.import_module(module_name)
        )
    except (ImportError, OSError) as exc:
        raise AgentLoadError(target, f"cannot import {module_name!r}: {exc}") from exc
    found = getattr(module, attr, None)
    if not isinstance(found, Agent):
        raise AgentLoadError(target, f"{attr!r} in {module_name!r} is {type(found).__name__}, not an Agent")
    return found


def _import_file(path: str) -> ModuleType:
    """Import a Python file as a module named after it (a new agent needs no package)."""
    file = Path(path).resolve()
    if not file.is_file():
        raise ImportError(f"no file {path}")
    spec = importlib.util.spec_from_file_location(file.stem, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[file.stem] = module
    spec.loader.exec_module(module)
    return module


async def serve_agent(
    agent: Agent, settings: AgentSettings, *, instance: str | None = None, telemetry: Telemetry | None = None
) -> int:
    """Run ``agent`` until SIGTERM or SIGINT, then drain and return the exit code (0).

    Args:
        telemetry: the process's providers, given to the bus and the model client;
            OpenTelemetry's global ones when ``None``. The caller shuts it down
            after this returns, so spans of the drain are sent too.
    """
    tracer_provider = telemetry.tracer_provider if telemetry is not None else None
    meter_provider = telemetry.meter_provider if telemetry is not None else None
    bus = await Bus.connect(
        settings, name=f"agent-{agent.name}", tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    resources = Resources.from_settings(
        settings, tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        runtime = AgentRuntime(agent, bus, settings, instance=instance, resources=resources)
        await runtime.start()
        skills = ", ".join(agent.skills)
        metrics = f"; metrics at {telemetry.metrics_url}" if telemetry and telemetry.metrics_url else ""
        print(
            f"agent {agent.name} ({runtime.instance}) serving {skills} on {bus.connected_url}{metrics}",
            flush=True,
        )
        await stop.wait()
        log.info("draining agent %s (up to %.0fs)", agent.name, settings.drain_grace)
        await runtime.stop()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await resources.close()
        await bus.close()
    print(f"agent {agent.name} stopped", file=sys.stderr, flush=True)
    return 0
