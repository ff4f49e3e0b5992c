"""The children of ``hivewire up``: kept running (a crashed one restarted, with backoff), stopped in order.

A child that exits while the mesh runs is started again with the same command,
after a pause that doubles with each exit in quick succession (1 s, 2 s, 4 s, up
to 30 s; back to 1 s once it has run for a minute), and the terminal says so in
a line. One crashed agent is no reason to stop the mesh: its replicas, the
gateway and the other agents go on, and durable work it held is redelivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Child", "describe_exit", "restart_delay", "stop_all", "supervise"]

FIRST_DELAY = 1.0
LONGEST_DELAY = 30.0
STABLE_AFTER = 60.0  # seconds up after which an exit counts as the first one again

Spawn = Callable[[str, list[str], dict[str, str]], Awaitable["Child"]]
Say = Callable[[str], None]


@dataclass
class Child:
    """A process ``hivewire up`` started, with what it takes to start it again."""

    name: str
    process: asyncio.subprocess.Process
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    metrics: str | None = None  # where it serves /metrics
    logs: asyncio.Task[None] | None = None  # the relay of its log lines
    restarts: int = 0  # exits in quick succession (reset once it stays up)
    started: float = field(default_factory=time.monotonic)


def restart_delay(child: Child, now: float) -> float:
    """Seconds to wait before starting ``child`` again, now that it has exited (counts the exit)."""
    if now - child.started >= STABLE_AFTER:
        child.restarts = 0
    delay = min(LONGEST_DELAY, FIRST_DELAY * 2.0 ** min(child.restarts, 16))
    child.restarts += 1
    return delay


def describe_exit(code: int | None) -> str:
    """How a process ended, in words: ``exited with code 1``, ``was killed by SIGKILL``."""
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


async def supervise(children: list[Child], stop: asyncio.Event, spawn: Spawn, say: Say) -> int:
    """Until ``stop`` (Ctrl-C): restart each child that exits, with backoff; then return 0."""
    stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    watched: dict[asyncio.Future[Any], Child] = {
        asyncio.ensure_future(child.process.wait()): child for child in children
    }
    try:
        while True:
            done, _ = await asyncio.wait([stopping, *watched], return_when=asyncio.FIRST_COMPLETED)
            if stopping in done:
                return 0
            for future in done:
                child = watched.pop(future)
                delay = restart_delay(child, time.monotonic())
                say(
                    f"hivewire up: {child.name} {describe_exit(child.process.returncode)}; "
                    f"restarting it in {delay:.0f} s (the rest of the mesh runs on)"
                )
                watched[asyncio.ensure_future(_restart(child, delay, stop, spawn, say))] = child
    finally:
        stopping.cancel()
        for future in watched:
            future.cancel()


async def _restart(child: Child, delay: float, stop: asyncio.Event, spawn: Spawn, say: Say) -> None:
    """Wait ``delay`` (or until Ctrl-C), start the child again, and wait for that process to exit."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay)
    if stop.is_set():
        return
    fresh = await spawn(child.name, child.args, child.env)
    child.process, child.logs = fresh.process, fresh.logs
    child.started = time.monotonic()
    say(f"hivewire up: {child.name} restarted (pid {child.process.pid})")
    await child.process.wait()


async def stop_all(children: list[Child], grace: float = 15.0) -> None:
    """SIGTERM the gateway first, then the agents (they drain), then wait; kill what is left."""
    for child in reversed(children):
        if child.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
            if child.name == "gateway":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(child.process.wait(), grace)
    for child in children:
        try:
            await asyncio.wait_for(child.process.wait(), grace)
        except TimeoutError:
            child.process.kill()
            await child.process.wait()
