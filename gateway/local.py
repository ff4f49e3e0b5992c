"""The local tenant: whose API key ``hivewire up`` makes, and whose knowledge its samples are."""

from __future__ import annotations

__all__ = ["TENANT"]

TENANT = "local"
