"""The local mesh: what ``hivewire up`` records for later commands, and how a command finds NATS.

``hivewire up`` writes ``up.json`` in its data folder (``.hivewire`` unless
``--data-dir`` or ``HIVEWIRE_DATA_DIR`` says otherwise): the NATS URL, the
gateway's URL, the local API key and its own process id. Every command then
reaches NATS at, in this order: its ``--nats-url`` flag, ``HIVEWIRE_NATS_URL``,
the URL of a mesh that ``hivewire up`` runs now from that data folder, and the
default ``nats://127.0.0.1:4222``. A state file whose mesh is gone (its process
ended, or NATS no longer answers) is not used.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

if TYPE_CHECKING:
    from bus.settings import NatsSettings

# Pydantic and the settings load only in settings_for and nats_url: `hivewire ask` reads the state
# file without them, and starts in a fraction of a second.

__all__ = [
    "DATA_DIR",
    "STATE_FILE",
    "LocalMesh",
    "forget",
    "load",
    "nats_url",
    "running",
    "save",
    "settings_for",
]

DATA_DIR = Path(".hivewire")
STATE_FILE = "up.json"
S = TypeVar("S", bound="NatsSettings")


class LocalMesh(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What a running ``hivewire up`` left for other commands (``<data dir>/up.json``)."""

    nats_url: str
    url: str | None = None  # the gateway
    api_key: str | None = None
    tenant: str | None = None
    pid: int = 0  # the `hivewire up` process
    data_dir: str = ""


_decoder = msgspec.json.Decoder(LocalMesh)


def state_path(data_dir: Path) -> Path:
    """Where ``hivewire up`` keeps its state file in ``data_dir``."""
    return data_dir / STATE_FILE


def save(data_dir: Path, mesh: LocalMesh) -> Path:
    """Write the state file (readable by this user only: it holds an API key); return its path."""
    path = state_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_bytes(msgspec.json.encode(mesh))
    return path


def load(data_dir: Path) -> LocalMesh | None:
    """The state file's content, whether or not its mesh still runs (None: no readable file)."""
    try:
        return _decoder.decode(state_path(data_dir).read_bytes())
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def running(data_dir: Path) -> LocalMesh | None:
    """The mesh ``hivewire up`` runs now from ``data_dir``; None if there is none, or it is gone."""
    mesh = load(data_dir)
    if mesh is None or not _alive(mesh.pid) or not _answers(mesh.nats_url):
        return None
    return mesh


def forget(data_dir: Path, pid: int) -> None:
    """Remove the state file if process ``pid`` wrote it (a later ``up`` may have replaced it)."""
    mesh = load(data_dir)
    if mesh is not None and mesh.pid == pid:
        with contextlib.suppress(OSError):
            state_path(data_dir).unlink()


def nats_url(flag: str | None, configured: str | None, data_dir: Path) -> str | None:
    """The NATS URL a command uses: its flag, then the environment, then a running local mesh.

    None means the default server (``nats://127.0.0.1:4222``).

    Raises:
        ValueError: the flag's or the environment's URL is not a NATS URL.
    """
    from bus.settings import check_nats_url

    if flag:
        return check_nats_url(flag)
    if configured:
        return check_nats_url(configured)
    mesh = running(data_dir)
    return mesh.nats_url if mesh is not None else None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, but not ours to signal
        return True
    return True


def _answers(url: str) -> bool:
    """Whether the first server of ``url`` accepts a TCP connection (within half a second)."""
    first = urllib.parse.urlsplit(url.split(",")[0].strip())
    if not first.hostname:
        return False
    try:
        with socket.create_connection((first.hostname, first.port or 4222), timeout=0.5):
            return True
    except (OSError, ValueError):
        return False


def settings_for(args: argparse.Namespace, cls: type[S], **overrides: Any) -> S:
    """``cls`` from the environment (and ``overrides``), reaching NATS where the command's options say.

    Raises:
        ValueError: a setting is invalid (a URL that is not a NATS URL, say), in one line.
    """
    import pydantic

    from bus.settings import check_nats_url, describe_error

    flag: str | None = getattr(args, "nats_url", None)
    try:
        if flag:
            overrides["nats_url"] = check_nats_url(flag)
        settings = cls(**overrides)
    except pydantic.ValidationError as exc:
        raise ValueError(describe_error(exc)) from None
    data_dir: Path = getattr(args, "data_dir", None) or settings.data_dir
    url = nats_url(flag, settings.nats_url, data_dir)
    return settings.model_copy(update={"nats_url": url, "data_dir": data_dir})
