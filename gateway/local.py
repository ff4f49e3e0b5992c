"""The local tenant, and how a command that talks HTTP (``ask``, ``traces``) finds the local gateway."""

from __future__ import annotations

import os
from pathlib import Path

from bus import local

__all__ = ["DEFAULT_URL", "TENANT", "find_gateway"]

TENANT = "local"
DEFAULT_URL = "http://127.0.0.1:8080"


def find_gateway(url: str | None, data_dir: Path | None) -> tuple[str, str | None, Path]:
    """The gateway's URL and an API key, and the data folder looked in.

    The URL is ``url`` (a flag), else ``HIVEWIRE_GATEWAY_URL``, else the gateway
    of the mesh ``hivewire up`` runs from the data folder, else the default; the
    key is ``HIVEWIRE_API_KEY``, else the one ``hivewire up`` recorded (None: none).
    """
    folder = data_dir or Path(os.environ.get("HIVEWIRE_DATA_DIR") or local.DATA_DIR)
    base = url or os.environ.get("HIVEWIRE_GATEWAY_URL")
    mesh = local.running(folder) if base is None else local.load(folder)
    base = base or (mesh.url if mesh is not None else None) or DEFAULT_URL
    key = os.environ.get("HIVEWIRE_API_KEY") or (mesh.api_key if mesh is not None else None)
    return base, key, folder
