"""The knowledge store: passages in Chroma, one collection per tenant and knowledge base.

Chroma runs embedded (``PersistentClient`` in a data folder) unless a server
URL is configured (``HttpClient``). Hivewire embeds passages and queries
itself (``knowledge.embeddings``) and hands Chroma vectors; the same embedder
is registered with Chroma as the collections' embedding function, so Chroma
never needs to download a model, even when the data folder is opened without
Hivewire's store. A collection's name is a hash of tenant and
knowledge base (always a valid Chroma name) and its metadata names both; a
search only ever opens the caller's tenant's collection.

Chroma's Python client is synchronous; every call runs in a worker thread so
the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bus import subjects
from knowledge.chunking import Chunk
from knowledge.embeddings import MiniLMEmbedder
from knowledge.errors import KnowledgeError

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

__all__ = ["Hit", "IngestResult", "KnowledgeStore", "Stats"]


@dataclass(frozen=True, slots=True)
class Hit:
    """A passage that matched a query; ``score`` is the cosine similarity (1 is identical)."""

    id: str
    text: str
    source: str
    title: str
    heading: str
    score: float


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What ingesting one document changed."""

    source: str
    added: int
    removed: int
    unchanged: int


@dataclass(frozen=True, slots=True)
class Stats:
    """A knowledge base's size."""

    passages: int
    sources: int


class KnowledgeStore:
    """Passages of every tenant's knowledge bases, searchable by meaning."""

    def __init__(self, client: ClientAPI, embedder: MiniLMEmbedder) -> None:
        """Wrap a Chroma client; prefer :meth:`open`."""
        from knowledge.chroma_embeddings import HivewireEmbeddings

        self._client = client
        self._embedder = embedder
        self._function = HivewireEmbeddings(embedder)
        self._collections: dict[tuple[str, str], Collection] = {}
        self._batch = client.get_max_batch_size()

    @classmethod
    def open(cls, *, path: Path, url: str | None = None, embedder: MiniLMEmbedder) -> KnowledgeStore:
        """Chroma embedded in ``path``, or the ``chroma run`` server at ``url`` when given."""
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        if url:
            parts = urlsplit(url)
            if not parts.hostname:
                raise KnowledgeError(f"not a Chroma server URL: {url!r}")
            client = chromadb.HttpClient(
                host=parts.hostname,
                port=parts.port or (443 if parts.scheme == "https" else 8000),
                ssl=parts.scheme == "https",
                settings=settings,
            )
        else:
            path.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(path=str(path), settings=settings)
        return cls(client, embedder)

    async def ingest(self, tenant: str, kb: str, source: str, chunks: Sequence[Chunk]) -> IngestResult:
        """Make ``source``'s passages in the knowledge base exactly ``chunks``.

        Unchanged passages (same id) are left alone, passages no longer in the
        document are removed and new ones embedded and added: re-ingesting an
        unchanged document does nothing.
        """
        return await asyncio.to_thread(self._ingest, tenant, kb, source, list(chunks))

    async def search(
        self,
        tenant: str,
        kb: str,
        query: str,
        *,
        k: int = 5,
        where: dict[str, Any] | None = None,
        min_score: float | None = None,
    ) -> list[Hit]:
        """The ``k`` passages closest in meaning to ``query``, best first.

        Args:
            where: a Chroma metadata filter, e.g. ``{"source": "billing.md"}``.
            min_score: drop hits less similar than this (cosine similarity).
        """
        return await asyncio.to_thread(self._search, tenant, kb, query, k, where, min_score)

    async def delete_source(self, tenant: str, kb: str, source: str) -> int:
        """Remove a document's passages; returns how many there were."""
        return await asyncio.to_thread(self._delete_source, tenant, kb, source)

    async def stats(self, tenant: str, kb: str) -> Stats:
        """How many passages and documents the knowledge base holds."""
        return await asyncio.to_thread(self._stats, tenant, kb)

    def _collection(self, tenant: str, kb: str) -> Collection:
        key = (subjects.token("tenant", tenant), subjects.token("knowledge base", kb))
        collection = self._collections.get(key)
        if collection is None:
            name = "hw-" + hashlib.sha256(f"{tenant}\x00{kb}".encode()).hexdigest()[:24]
            collection = self._client.get_or_create_collection(
                name,
                metadata={"tenant": tenant, "kb": kb},
                configuration={"hnsw": {"space": "cosine"}},
                # Chroma types the parameter for images as well as text; ours embeds text only.
                embedding_function=self._function,  # type: ignore[arg-type]
            )
            self._collections[key] = collection
        return collection

    def _ingest(self, tenant: str, kb: str, source: str, chunks: list[Chunk]) -> IngestResult:
        collection = self._collection(tenant, kb)
        existing = set(collection.get(where={"source": source}, include=[])["ids"])
        wanted = {chunk.id: chunk for chunk in chunks}
        stale = sorted(existing - wanted.keys())
        new = [chunk for chunk_id, chunk in wanted.items() if chunk_id not in existing]
        for start in range(0, len(stale), self._batch):
            collection.delete(ids=stale[start : start + self._batch])
        for start in range(0, len(new), self._batch):
            batch = new[start : start + self._batch]
            vectors = self._embedder.embed([_embedded_text(chunk) for chunk in batch])
            collection.add(
                ids=[chunk.id for chunk in batch],
                embeddings=vectors,
                documents=[chunk.text for chunk in batch],
                metadatas=[
                    {"source": c.source, "title": c.title, "heading": c.heading, "position": c.position}
                    for c in batch
                ],
            )
        return IngestResult(
            source=source, added=len(new), removed=len(stale), unchanged=len(wanted) - len(new)
        )

    def _search(
        self, tenant: str, kb: str, query: str, k: int, where: dict[str, Any] | None, min_score: float | None
    ) -> list[Hit]:
        collection = self._collection(tenant, kb)
        if collection.count() == 0:
            return []
        vector = self._embedder.embed([query])
        found = collection.query(
            query_embeddings=vector,
            n_results=k,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        hits = []
        documents = (found["documents"] or [[]])[0]
        metadatas = (found["metadatas"] or [[]])[0]
        distances = (found["distances"] or [[]])[0]
        for chunk_id, text, meta, distance in zip(
            found["ids"][0], documents, metadatas, distances, strict=True
        ):
            score = 1.0 - float(distance)
            if min_score is not None and score < min_score:
                continue
            hits.append(
                Hit(
                    id=chunk_id,
                    text=text or "",
                    source=str(meta.get("source", "")),
                    title=str(meta.get("title", "")),
                    heading=str(meta.get("heading", "")),
                    score=score,
                )
            )
        return hits

    def _delete_source(self, tenant: str, kb: str, source: str) -> int:
        collection = self._collection(tenant, kb)
        ids = collection.get(where={"source": source}, include=[])["ids"]
        if ids:
            collection.delete(ids=ids)
        return len(ids)

    def _stats(self, tenant: str, kb: str) -> Stats:
        collection = self._collection(tenant, kb)
        metadatas = collection.get(include=["metadatas"])["metadatas"] or []
        return Stats(passages=len(metadatas), sources=len({str(m.get("source")) for m in metadatas}))


def _embedded_text(chunk: Chunk) -> str:
    # The title is context the passage leaves implicit: its first line is only the section.
    return f"{chunk.title}\n{chunk.text}"
