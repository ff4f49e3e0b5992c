"""Where ``hivewire up`` leaves what local clients need: the gateway's URL and the local API key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["TENANT", "UP_FILE", "read_up", "save_up"]

TENANT = "local"
UP_FILE = Path(".hivewire/up.json")


def read_up() -> dict[str, Any]:
    """What the last ``hivewire up`` in this folder wrote (empty if none)."""
    try:
        found = json.loads(UP_FILE.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def save_up(base: str, key: str) -> None:
    """Record the gateway's URL and the local key (readable by this user only)."""
    UP_FILE.parent.mkdir(parents=True, exist_ok=True)
    UP_FILE.touch(mode=0o600)
    UP_FILE.chmod(0o600)
    UP_FILE.write_text(json.dumps({"url": base, "apiKey": key, "tenant": TENANT}))
