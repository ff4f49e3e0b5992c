"""Hivewire's embedder registered with Chroma, so a reopened collection embeds without a download.

Chroma stores a collection's embedding function by name and rebuilds it from
that name (``build_from_config``) whenever the collection is used without one
passed in: a script that opens the data folder with plain ``chromadb`` and
queries by text gets Hivewire's offline embeddings, not Chroma's downloading
default. Chroma rebuilds on every add and query, and its registry API offers
no place to hand over an instance, so the embedder is shared per process here:
the store sets it when it opens; anything else loads it once, on first use.

Importing this module imports chromadb (about a second); only the store does.
"""

from __future__ import annotations

import threading
from typing import Any

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from knowledge.embedders import ChromaDefaultEmbedder, Embedder
from knowledge.embeddings import MAX_TOKENS, MODEL_NAME, MiniLMEmbedder

__all__ = ["HivewireEmbeddings", "function_for"]


def function_for(embedder: Embedder) -> EmbeddingFunction[Documents] | None:
    """What a new collection records as its embedding function, so plain Chroma can embed query texts.

    ``None`` for OpenAI embeddings: Chroma's own OpenAI function would need the
    key in an environment variable of its choosing, so such collections record
    none and plain Chroma must be given query vectors.
    """
    if isinstance(embedder, MiniLMEmbedder):
        return HivewireEmbeddings(embedder)
    if isinstance(embedder, ChromaDefaultEmbedder):
        return embedder.function
    return None


@register_embedding_function
class HivewireEmbeddings(EmbeddingFunction[Documents]):
    """all-MiniLM-L6-v2 (int8, offline) as a Chroma embedding function named ``hivewire-minilm-int8``."""

    _shared: MiniLMEmbedder | None = None
    _lock = threading.Lock()

    def __init__(self, embedder: MiniLMEmbedder | None = None) -> None:
        if embedder is not None:
            HivewireEmbeddings._shared = embedder
        self._embedder = embedder

    def __call__(self, input: Documents) -> Embeddings:
        return list(self._get().embed(list(input)))

    @classmethod
    def _get_shared(cls) -> MiniLMEmbedder:
        with cls._lock:
            if cls._shared is None:
                cls._shared = MiniLMEmbedder()
            return cls._shared

    def _get(self) -> MiniLMEmbedder:
        if self._embedder is None:
            self._embedder = self._get_shared()
        return self._embedder

    @staticmethod
    def name() -> str:
        return "hivewire-minilm-int8"

    def get_config(self) -> dict[str, Any]:
        return {"model": MODEL_NAME}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> HivewireEmbeddings:
        HivewireEmbeddings.validate_config(config)
        return HivewireEmbeddings()

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        if config.get("model", MODEL_NAME) != MODEL_NAME:
            raise ValueError(f"this collection was embedded with {config.get('model')!r}, not {MODEL_NAME!r}")

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        if old_config.get("model") != new_config.get("model"):
            raise ValueError("a collection's embedding model cannot change; re-ingest into a new one")

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def max_tokens(self) -> int:
        return MAX_TOKENS
