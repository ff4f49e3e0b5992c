"""Settings of processes that use the knowledge store (the CLI and the knowledge agent)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from bus.settings import NatsSettings

__all__ = ["EmbeddingsChoice", "KnowledgeSettings"]

EmbeddingsChoice = Literal["minilm", "openai", "chroma-default"]


class KnowledgeSettings(NatsSettings):
    """Read from ``HIVEWIRE_*`` environment variables (and ``.env``)."""

    chroma_path: Path = Field(
        default=Path(".hivewire/chroma"),
        description="Embedded Chroma's data folder (default: <data dir>/chroma).",
    )
    chroma_url: str | None = Field(
        default=None, description="A `chroma run` server (http://host:port). Unset: embedded Chroma."
    )
    knowledge_base: str = Field(default="default", description="Knowledge base used when none is named.")

    embeddings: EmbeddingsChoice = Field(
        default="minilm",
        description="minilm (offline, default), openai (an OpenAI-compatible endpoint), "
        "chroma-default (Chroma's own; downloads its model at first use).",
    )
    embeddings_model: str = Field(
        default="text-embedding-3-small", description="The model HIVEWIRE_EMBEDDINGS=openai asks for."
    )
    embeddings_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible endpoint (.../v1) for embeddings. Unset: HIVEWIRE_LLM_BASE_URL, "
        "else the openai client's default (OPENAI_BASE_URL or api.openai.com).",
    )
    embeddings_api_key: SecretStr | None = Field(
        default=None, description="Unset: HIVEWIRE_LLM_API_KEY, else the openai client's OPENAI_API_KEY."
    )
    embeddings_timeout: float = Field(
        default=30.0, gt=0, description="Seconds one embeddings request may take."
    )
    # The model endpoint the agents use (see agents.settings.AgentSettings): the same variables, read here
    # so that one endpoint configured for the mesh serves embeddings too.
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None

    search_cache_ttl: float = Field(
        default=30.0,
        ge=0,
        description="Seconds a search result is reused for the same query (0: no cache). Changes made by "
        "other processes show once it expires.",
    )
    search_cache_size: int = Field(default=256, ge=1, description="Search results the cache holds.")

    @model_validator(mode="after")
    def _in_data_dir(self) -> Self:
        if "chroma_path" not in self.model_fields_set:
            self.chroma_path = self.data_dir / "chroma"
        return self
