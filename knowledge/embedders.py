"""The embedders a knowledge store can use, behind one small protocol, and the choice between them.

``minilm`` (the default) embeds offline with the pinned int8 MiniLM
(:mod:`knowledge.embeddings`); ``openai`` calls an OpenAI-compatible
``/v1/embeddings`` endpoint through the ``openai`` client; ``chroma-default``
is Chroma's own ``DefaultEmbeddingFunction``, which downloads its model
(about 80 MB, to ``~/.cache/chroma``) the first time it embeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from knowledge.embeddings import DIMENSIONS, MiniLMEmbedder
from knowledge.errors import EmbeddingError, KnowledgeError
from knowledge.settings import KnowledgeSettings

if TYPE_CHECKING:
    import openai
    from chromadb.utils.embedding_functions import DefaultEmbeddingFunction

__all__ = [
    "ChromaDefaultEmbedder",
    "Embedder",
    "OpenAIEmbedder",
    "Vectors",
    "embedder_from_settings",
    "identity",
]

Vectors = np.ndarray[Any, np.dtype[np.float32]]


class Embedder(Protocol):
    """Turns texts into vectors; all the store needs of an embedding model."""

    @property
    def kind(self) -> str:
        """Which embedder: ``minilm``, ``openai``, ``chroma-default``."""
        ...

    @property
    def model(self) -> str:
        """The model it runs; with :attr:`kind`, what a collection records as its builder."""
        ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One vector per text, in order; called from worker threads.

        Raises:
            EmbeddingError: the model or the endpoint failed.
        """
        ...

    def close(self) -> None:
        """Release connections or sessions."""
        ...


def identity(embedder: Embedder) -> str:
    """``kind/model``: recorded in each collection, so vectors of two models never mix."""
    return f"{embedder.kind}/{embedder.model}"


class OpenAIEmbedder:
    """Embeddings from an OpenAI-compatible ``/v1/embeddings`` endpoint (one pooled client).

    Args:
        base_url, api_key: ``None`` leaves them to the ``openai`` client's defaults
            (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``).
        batch_size: texts per request (the API takes up to 2,048).

    Raises:
        EmbeddingError: no API key was given or found.
    """

    kind = "openai"

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        batch_size: int = 256,
    ) -> None:
        import openai

        self.model = model
        self._batch_size = batch_size
        try:
            self._client: openai.OpenAI = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout)
        except openai.OpenAIError as exc:
            raise EmbeddingError(identity(self), str(exc)) from exc

    def embed(self, texts: Sequence[str]) -> Vectors:
        import openai

        rows: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            batch = list(texts[start : start + self._batch_size])
            try:
                response = self._client.embeddings.create(model=self.model, input=batch)
            except openai.OpenAIError as exc:
                raise EmbeddingError(identity(self), str(exc)) from exc
            if len(response.data) != len(batch):
                raise EmbeddingError(identity(self), f"{len(response.data)} vectors for {len(batch)} texts")
            rows.extend(item.embedding for item in sorted(response.data, key=lambda item: item.index))
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return np.asarray(rows, dtype=np.float32)

    def close(self) -> None:
        self._client.close()


class ChromaDefaultEmbedder:
    """Chroma's ``DefaultEmbeddingFunction`` (all-MiniLM-L6-v2, fp32, every text padded to 256 tokens).

    Its model is downloaded from Chroma's bucket the first time it embeds, not
    when it is created; without a route to it, embedding raises
    :class:`~knowledge.errors.EmbeddingError`.
    """

    kind = "chroma-default"
    model = "all-MiniLM-L6-v2"

    def __init__(self) -> None:
        from chromadb.utils.embedding_functions import DefaultEmbeddingFunction

        self.function: DefaultEmbeddingFunction = DefaultEmbeddingFunction()

    def embed(self, texts: Sequence[str]) -> Vectors:
        import httpx

        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        try:
            vectors = self.function(list(texts))
        except (OSError, ValueError, httpx.HTTPError) as exc:
            raise EmbeddingError(identity(self), str(exc)) from exc
        return np.asarray(vectors, dtype=np.float32)

    def close(self) -> None:
        """Nothing to release."""


def embedder_from_settings(settings: KnowledgeSettings) -> Embedder:
    """The embedder ``HIVEWIRE_EMBEDDINGS`` names, loaded (MiniLM takes about a second).

    Raises:
        EmbeddingModelError: the offline model files are missing or not the pinned ones.
        EmbeddingError: ``openai`` without an API key anywhere.
    """
    if settings.embeddings == "minilm":
        return MiniLMEmbedder()
    if settings.embeddings == "openai":
        key = settings.embeddings_api_key or settings.llm_api_key
        return OpenAIEmbedder(
            model=settings.embeddings_model,
            base_url=settings.embeddings_base_url or settings.llm_base_url,
            api_key=key.get_secret_value() if key else None,
            timeout=settings.embeddings_timeout,
        )
    if settings.embeddings == "chroma-default":
        return ChromaDefaultEmbedder()
    raise KnowledgeError(f"unknown embeddings {settings.embeddings!r}")  # pragma: no cover - Literal
