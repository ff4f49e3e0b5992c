"""The local model of ``hivewire up --model``: its process, readiness and speed, and what agents are told."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agents.llm.local import OMP_ENV, LocalModelSettings, ModelInfo, describe, generation_speed, healthy

__all__ = [
    "DESK_USES",
    "RESEARCH_USES",
    "LocalModel",
    "agent_env",
    "command",
    "free_port",
    "measure",
    "start_env",
    "wait_ready",
]

# The model uses of the agents `hivewire up` runs, all answered by the one local model.
DESK_USES = ("triage.classify", "answer.default")
# The research swarm's, each with the most tokens it may write on a CPU (its deadline is the gateway's turn).
RESEARCH_USES = {"planner.plan": 300, "analyst.default": 300, "writer.default": 600}
LOAD_TIMEOUT = 120.0
ANSWER_TOKENS = 300


@dataclass(frozen=True, slots=True)
class LocalModel:
    """A running local model: where it answers, what it is, how fast it generates."""

    url: str
    info: ModelInfo
    tokens_per_second: float
    threads: int

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible endpoint, for ``HIVEWIRE_LLM_BASE_URL``."""
        return self.url + "/v1"

    def describe(self) -> str:
        """One line for the terminal."""
        threads = f"{self.threads} thread{'s' if self.threads > 1 else ''}"
        return (
            f"{self.info.name} on llama.cpp at {self.base_url} ({threads}, context {self.info.context}): "
            f"{self.tokens_per_second:.0f} tokens/s"
        )


def agent_env(env: Mapping[str, str], url: str, info: ModelInfo) -> dict[str, str]:
    """``env`` with the agents pointed at the model served at ``url``.

    Every model use of the desk and the research swarm names it (the endpoint
    serves this one model whatever a request names, but names are what
    accounting and traces show), and agents that declare no model use it too.
    The desk's answers are kept to 300 tokens, the research swarm's calls to
    what ``RESEARCH_USES`` says, unless ``HIVEWIRE_LLM_MODELS`` says otherwise. A model whose chat
    template cannot call tools is sent them as schema-constrained JSON instead.
    """
    overrides = json.loads(env.get("HIVEWIRE_LLM_MODELS") or "{}")
    for use in DESK_USES:
        overrides[use] = {**overrides.get(use, {}), "name": info.name}
    # A reply of 500 tokens takes most of a minute on a laptop's CPU: longer than a turn may.
    overrides["answer.default"].setdefault("max_tokens", ANSWER_TOKENS)
    for use, tokens in RESEARCH_USES.items():
        overrides[use] = {"max_tokens": tokens, **overrides.get(use, {}), "name": info.name}
    changed = {
        **env,
        "HIVEWIRE_LLM_BASE_URL": url + "/v1",
        "HIVEWIRE_LLM_API_KEY": "local",
        "HIVEWIRE_LLM_MODEL": info.name,
        "HIVEWIRE_LLM_MODELS": json.dumps(overrides),
    }
    if not info.tool_calls:
        changed["HIVEWIRE_LLM_TOOL_CALLS"] = "json"
    return changed


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def command(path: Path, port: int, threads: int, settings: LocalModelSettings) -> list[str]:
    """The ``hivewire`` arguments that serve ``path`` on ``port``."""
    return [
        "model",
        "serve",
        str(path),
        "--port",
        str(port),
        "--threads",
        str(threads),
        "--context",
        str(settings.local_model_context),
        "--parallel",
        str(settings.local_model_parallel),
    ]


def start_env(env: Mapping[str, str]) -> dict[str, str]:
    """The model process's environment: ``env`` with OpenMP's threads sleeping when idle."""
    return {**env, **OMP_ENV}


async def wait_ready(
    url: str, process: asyncio.subprocess.Process, *, timeout: float = LOAD_TIMEOUT
) -> ModelInfo:
    """Wait for the model at ``url`` to load; return what it is.

    Raises:
        SystemExit: the process exited, or the model did not load within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(healthy, url):
        if process.returncode is not None:
            raise SystemExit(f"hivewire up: the model exited with code {process.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"hivewire up: the model did not load within {timeout:.0f} s")
        await asyncio.sleep(0.2)
    return await asyncio.to_thread(describe, url)


async def measure(url: str, info: ModelInfo, threads: int) -> LocalModel:
    """The model at ``url`` with its generation speed, measured now (best when the mesh is idle)."""
    speed = await asyncio.to_thread(generation_speed, url)
    return LocalModel(url=url, info=info, tokens_per_second=speed, threads=threads)
