"""Settings of processes that use the knowledge store (the CLI today, the knowledge agent next)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from bus.settings import NatsSettings

__all__ = ["KnowledgeSettings"]


class KnowledgeSettings(NatsSettings):
    """Read from ``HIVEWIRE_*`` environment variables (and ``.env``)."""

    chroma_path: Path = Field(default=Path(".hivewire/chroma"), description="Embedded Chroma's data folder.")
    chroma_url: str | None = Field(
        default=None, description="A `chroma run` server (http://host:port). Unset: embedded Chroma."
    )
    knowledge_base: str = Field(default="default", description="Knowledge base used when none is named.")
