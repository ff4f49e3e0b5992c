"""Agents the benchmarks run as separate processes (``hivewire agent run bench.zoo:NAME``).

The process must be able to import ``bench.zoo``: the benchmarks start it with
the repository as its working directory and on ``PYTHONPATH``.
"""

from __future__ import annotations

import asyncio

from agents import Agent, Context

FAN_OUT = 8


def _sleeper(index: int) -> Agent:
    agent = Agent(f"sleeper{index}", description="Stands for an agent waiting on I/O (an LLM, a tool).")

    @agent.skill
    async def io(ctx: Context, seconds: float) -> float:
        """Wait ``seconds`` as a call to a slow service would, then say how long."""
        await asyncio.sleep(seconds)
        return seconds

    return agent


# One agent per process: the fan-out calls eight different agents, not eight replicas.
sleeper0, sleeper1, sleeper2, sleeper3, sleeper4, sleeper5, sleeper6, sleeper7 = (
    _sleeper(i) for i in range(FAN_OUT)
)

noop = Agent("benchjobs", description="Durable tasks that do nothing, to measure the task machinery.")


@noop.skill
async def done(ctx: Context, n: int) -> int:
    """Return at once: every microsecond measured is the mesh's."""
    return n


echo = Agent("echo", description="Answers with the message's text in capitals (the A2A benchmark's agent).")


@echo.skill
async def shout(ctx: Context, text: str) -> str:
    """The text in capitals."""
    return text.upper()
