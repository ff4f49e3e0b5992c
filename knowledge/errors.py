"""The errors of the knowledge service: one root, each carrying the data that explains it."""

from __future__ import annotations

__all__ = ["EmbedderMismatch", "EmbeddingError", "EmbeddingModelError", "KnowledgeError"]


class KnowledgeError(Exception):
    """Root of every error raised by :mod:`knowledge`."""


class EmbeddingModelError(KnowledgeError):
    """The embedding model or its vocabulary could not be loaded (missing, or not the pinned file)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot load the embedding model from {path}: {reason}")


class EmbeddingError(KnowledgeError):
    """An embedder failed to embed texts (an API error, a model that could not be fetched)."""

    def __init__(self, embedder: str, reason: str) -> None:
        self.embedder = embedder
        self.reason = reason
        super().__init__(f"embedding with {embedder} failed: {reason}")


class EmbedderMismatch(KnowledgeError):
    """A knowledge base was built by another embedder than the one configured: vectors would not compare."""

    def __init__(self, tenant: str, kb: str, recorded: str, configured: str) -> None:
        self.tenant = tenant
        self.kb = kb
        self.recorded = recorded
        self.configured = configured
        super().__init__(
            f"knowledge base {kb!r} of tenant {tenant!r} was embedded with {recorded}, but this process "
            f"embeds with {configured}; use the same HIVEWIRE_EMBEDDINGS (and model) as when it was built, "
            "or ingest into another knowledge base"
        )
