"""Start peer processes for tests and make sure none outlives its test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

PEERS = Path(__file__).with_name("peers.py")


class Peer:
    """A running ``tests/peers.py`` process."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.output: list[str] = []

    @property
    def pid(self) -> int:
        return self.process.pid

    async def stop(self) -> list[str]:
        """SIGTERM it, wait for it, and return what it printed after ``ready``."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        assert self.process.stdout is not None
        out = await asyncio.wait_for(self.process.stdout.read(), 10)
        await asyncio.wait_for(self.process.wait(), 10)
        self.output = out.decode().splitlines()
        return self.output


@asynccontextmanager
async def peer(url: str, subject: str, *extra: str) -> AsyncIterator[Peer]:
    """Run a responder in another OS process for the duration of the block."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PEERS),
        "--url",
        url,
        "--subject",
        subject,
        *extra,
        stdout=asyncio.subprocess.PIPE,
    )
    running = Peer(process)
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        assert line.strip() == b"ready", f"peer did not start: {line!r}"
        yield running
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


# Agent processes in tests beat fast, so deaths are noticed within a second or two.
AGENT_ENV = {
    "HIVEWIRE_HEARTBEAT_INTERVAL": "0.3",
    "HIVEWIRE_HEARTBEAT_MISSES": "3",
    "HIVEWIRE_TASK_ACK_WAIT": "2",
    "HIVEWIRE_TURN_ACK_WAIT": "2",
    "HIVEWIRE_TASK_MAX_DELIVERIES": "3",
    "HIVEWIRE_TASK_RETRY_DELAY": "0.1",
    "HIVEWIRE_DRAIN_GRACE": "10",
}


class AgentProcess:
    """A running ``hivewire agent run MODULE:ATTR`` process."""

    def __init__(self, process: asyncio.subprocess.Process, banner: str) -> None:
        self.process = process
        self.banner = banner

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: the process dies mid-work without any cleanup."""
        self.process.kill()

    async def terminate(self, timeout: float = 20) -> int:
        """SIGTERM, then wait for the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), timeout)


@asynccontextmanager
async def agent_process(
    url: str, target: str, *, start_timeout: float = 30, stderr: IO[bytes] | None = None, **env: str
) -> AsyncIterator[AgentProcess]:
    """Run ``hivewire agent run target`` against ``url`` until the block ends (its log to ``stderr``)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bus.cli",
        "--log-level",
        "WARNING",
        "agent",
        "run",
        target,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        env={**os.environ, **AGENT_ENV, "HIVEWIRE_NATS_URL": url, **env},
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), start_timeout)).decode()
        assert line.startswith("agent "), f"agent {target} did not start: {line!r}"
        yield AgentProcess(process, line.strip())
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@asynccontextmanager
async def agent_processes(url: str, *agents: tuple[str, dict[str, str]]) -> AsyncIterator[list[AgentProcess]]:
    """Run several ``(target, env)`` agents at once (they start in parallel) until the block ends."""
    async with contextlib.AsyncExitStack() as stack:
        started = await asyncio.gather(
            # Starting together, they share the CPU: each may take longer than one alone.
            *(
                stack.enter_async_context(agent_process(url, target, start_timeout=90, **env))
                for target, env in agents
            ),
            return_exceptions=True,  # every one entered or failed before the stack unwinds
        )
        failed = next((result for result in started if isinstance(result, BaseException)), None)
        if failed is not None:
            raise failed
        yield [result for result in started if isinstance(result, AgentProcess)]


async def hivewire(url: str, *args: str) -> str:
    """Run a ``hivewire`` command against the NATS at ``url``; return what it printed (it must succeed)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bus.cli",
        *args,
        env={**os.environ, **AGENT_ENV, "HIVEWIRE_NATS_URL": url},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, out
    return out.decode()


@asynccontextmanager
async def gateway_process(
    url: str, port: int, *, stderr: IO[bytes] | None = None, **env: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run ``hivewire gateway`` against the NATS at ``url``, on ``port``, until the block ends (its log
    to ``stderr``)."""
    import httpx

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bus.cli",
        "--log-level",
        "WARNING",
        "gateway",
        "--port",
        str(port),
        env={**os.environ, **AGENT_ENV, "HIVEWIRE_NATS_URL": url, "OTEL_METRICS_EXPORTER": "none", **env},
        stderr=stderr,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/readyz")).status_code == 200:
                        break
                if process.returncode is not None:
                    raise RuntimeError(f"the gateway exited with {process.returncode}")
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("the gateway did not become ready")
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@asynccontextmanager
async def paused(pid: int) -> AsyncIterator[None]:
    """Stop process ``pid`` (SIGSTOP) for the block, as a hung or overloaded server would be, and
    let it go on (SIGCONT) after.

    The block starts once every thread of it has stopped: a signal to a process with several
    threads stops them as each is next scheduled, and on a busy machine one may answer a request
    meanwhile.
    """
    os.kill(pid, signal.SIGSTOP)
    try:
        async with asyncio.timeout(10):
            while not _all_stopped(pid):
                await asyncio.sleep(0.005)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _all_stopped(pid: int) -> bool:
    threads = Path(f"/proc/{pid}/task")
    if not threads.is_dir():  # not Linux: trust the signal, after a moment
        return True
    states = []
    for thread in threads.iterdir():
        with contextlib.suppress(OSError):
            # The state follows the command name, which is in parentheses.
            states.append((thread / "stat").read_text().rsplit(")", 1)[1].split()[0])
    return all(state in ("T", "t") for state in states)
