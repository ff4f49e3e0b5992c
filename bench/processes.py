"""Start agent processes for a benchmark, make sure none outlives it, and read what they cost.

With ``HIVEWIRE_BENCH_PROFILE=<dir>`` each agent runs under cProfile and
writes ``<dir>/agent-<target>.prof`` when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from ``/proc``, so Linux only).

    Raises:
        OSError: there is no such process (any more).
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _start(url: str, target: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    profile: tuple[str, ...] = ()
    if folder := os.environ.get("HIVEWIRE_BENCH_PROFILE"):  # cProfile data of the agent, for profiling
        os.makedirs(folder, exist_ok=True)
        name = target.replace(":", "-").replace("/", "-")
        profile = ("-m", "cProfile", "-o", str(Path(folder) / f"agent-{name}.prof"))
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *profile,
        "-m",
        "bus.cli",
        "--log-level",
        "WARNING",
        "agent",
        "run",
        target,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        env={
            **os.environ,
            "PYTHONPATH": pythonpath,
            "HIVEWIRE_NATS_URL": url,
            "HIVEWIRE_DRAIN_GRACE": "2",
            **env,
        },
    )


@asynccontextmanager
async def agent_processes(
    url: str, targets: Sequence[str], *, start_timeout: float = 60.0, **env: str
) -> AsyncIterator[list[int]]:
    """Run ``hivewire agent run TARGET`` for each target (in parallel) until the block ends.

    Yields the processes' ids once every one of them has joined the mesh (within ``start_timeout``
    seconds, all of them together).
    """
    processes: list[asyncio.subprocess.Process] = []
    try:
        for target in targets:
            processes.append(await _start(url, target, env))
        deadline = asyncio.get_running_loop().time() + start_timeout
        for target, process in zip(targets, processes, strict=True):
            assert process.stdout is not None
            left = max(1.0, deadline - asyncio.get_running_loop().time())
            line = (await asyncio.wait_for(process.stdout.readline(), left)).decode()
            if not line.startswith("agent "):
                raise SystemExit(f"agent {target} did not start: {line!r}")
        yield [process.pid for process in processes]
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
