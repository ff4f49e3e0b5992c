"""The errors of the knowledge service: one root, each carrying the data that explains it."""

from __future__ import annotations

__all__ = ["EmbeddingModelError", "KnowledgeError"]


class KnowledgeError(Exception):
    """Root of every error raised by :mod:`knowledge`."""


class EmbeddingModelError(KnowledgeError):
    """The embedding model or its vocabulary could not be loaded (missing, or not the pinned file)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot load the embedding model from {path}: {reason}")
