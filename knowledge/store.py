"""The knowledge store: passages in Chroma, one collection per tenant and knowledge base.

Chroma runs embedded (``PersistentClient`` in a data folder) unless a server
URL is configured (``HttpClient``). Hivewire embeds passages and queries
itself (``knowledge.embeddings``) and hands Chroma vectors; the same embedder
is registered with Chroma as the collections' embedding function, so Chroma
never needs to download a model, even when the data folder is opened without
Hivewire's store. A collection's name is a hash of tenant and
knowledge base (always a valid Chroma name) and its metadata names both; a
search only ever opens the caller's tenant's collection.

Which embedder built a collection is recorded in its metadata (``embedder``:
``kind/model``); opening it with another raises
:class:`~knowledge.errors.EmbedderMismatch` instead of mixing vectors that do
not compare. Search results are cached briefly (:mod:`knowledge.cache`).
Embedding and the Chroma query are traced (``knowledge.embed``,
``knowledge.query``) under a ``knowledge.search`` span.

Chroma's Python client is synchronous; every call runs in a worker thread so
the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import trace

from bus import subjects
from knowledge.cache import SearchCache
from knowledge.chunking import Chunk
from knowledge.embedders import Embedder, Vectors, embedder_from_settings, identity
from knowledge.embeddings import MODEL_NAME
from knowledge.errors import EmbedderMismatch, KnowledgeError
from knowledge.settings import KnowledgeSettings

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

__all__ = ["Hit", "IngestResult", "KnowledgeStore", "Stats"]

# Collections built before the embedder was recorded were all built by the offline MiniLM.
_LEGACY_EMBEDDER = f"minilm/{MODEL_NAME}"


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
    """A knowledge base's size, and a fingerprint of its content.

    ``fingerprint`` hashes the passage ids, which are hashes of the passages'
    content: it changes whenever a passage is added, changed or removed, and
    every process computes the same one for the same content.
    """

    passages: int
    sources: int
    fingerprint: str


class KnowledgeStore:
    """Passages of every tenant's knowledge bases, searchable by meaning."""

    def __init__(
        self,
        client: ClientAPI,
        embedder: Embedder,
        *,
        cache: SearchCache[tuple[Hit, ...]] | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        owns_embedder: bool = False,
        server: tuple[str, int] | None = None,
    ) -> None:
        """Wrap a Chroma client; prefer :meth:`open` or :meth:`from_settings`.

        Args:
            cache: where search results are kept briefly; none by default.
            tracer_provider: where spans go; the global provider when ``None``.
            owns_embedder: close the embedder with the store.
            server: host and port of the ``chroma run`` server ``client`` talks to (for spans).
        """
        from knowledge.chroma_embeddings import function_for

        self._client = client
        self._embedder = embedder
        self._embedder_id = identity(embedder)
        self._owns_embedder = owns_embedder
        self._function = function_for(embedder)
        self._collections: dict[tuple[str, str], Collection] = {}
        self._versions: dict[tuple[str, str], int] = {}
        self._batch = client.get_max_batch_size()
        self._server_attributes: dict[str, str | int] = (
            {"server.address": server[0], "server.port": server[1]} if server else {}
        )
        self.cache: SearchCache[tuple[Hit, ...]] = (
            cache if cache is not None else SearchCache(ttl=0, max_entries=1)
        )
        self._tracer = trace.get_tracer("hivewire.knowledge", tracer_provider=tracer_provider)

    @classmethod
    def open(
        cls,
        *,
        path: Path,
        url: str | None = None,
        embedder: Embedder,
        cache_ttl: float = 0.0,
        cache_size: int = 256,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> KnowledgeStore:
        """Chroma embedded in ``path``, or the ``chroma run`` server at ``url`` when given.

        Args:
            cache_ttl: seconds a search result is reused (0, the default here: not at all).
        """
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        if url:
            parts = urlsplit(url)
            if not parts.hostname:
                raise KnowledgeError(f"not a Chroma server URL: {url!r}")
            server = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 8000))
            try:
                client = chromadb.HttpClient(
                    host=server[0],
                    port=server[1],
                    ssl=parts.scheme == "https",
                    settings=settings,
                )
            except ValueError as exc:  # chromadb's message for a server it cannot reach
                raise KnowledgeError(f"cannot reach the Chroma server at {url}: {exc}") from exc
        else:
            server = None
            path.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(path=str(path), settings=settings)
        cache = SearchCache[tuple[Hit, ...]](ttl=cache_ttl, max_entries=cache_size)
        return cls(client, embedder, cache=cache, tracer_provider=tracer_provider, server=server)

    @classmethod
    def from_settings(
        cls,
        settings: KnowledgeSettings,
        *,
        embedder: Embedder | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> KnowledgeStore:
        """The store ``settings`` describe, with the embedder ``HIVEWIRE_EMBEDDINGS`` names unless given.

        Blocks while the embedder loads (about a second); the store closes the
        embedder it made.
        """
        owned = embedder is None
        chosen = embedder if embedder is not None else embedder_from_settings(settings)
        try:
            store = cls.open(
                path=settings.chroma_path,
                url=settings.chroma_url,
                embedder=chosen,
                cache_ttl=settings.search_cache_ttl,
                cache_size=settings.search_cache_size,
                tracer_provider=tracer_provider,
            )
        except BaseException:
            if owned:
                chosen.close()
            raise
        store._owns_embedder = owned
        return store

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    async def close(self) -> None:
        """Release Chroma's connections (and the embedder, if the store made it)."""
        await asyncio.to_thread(self._close)

    async def ingest(self, tenant: str, kb: str, source: str, chunks: Sequence[Chunk]) -> IngestResult:
        """Make ``source``'s passages in the knowledge base exactly ``chunks``.

        Unchanged passages (same id) are left alone, passages no longer in the
        document are removed and new ones embedded and added: re-ingesting an
        unchanged document does nothing.

        Raises:
            EmbedderMismatch: the knowledge base was built by another embedder.
        """
        try:
            return await asyncio.to_thread(self._ingest, tenant, kb, source, list(chunks))
        finally:
            self._changed(tenant, kb)

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

        The same search of the same knowledge base, unchanged since by this
        process, is answered from the cache while its entry lives.

        Args:
            where: a Chroma metadata filter, e.g. ``{"source": "billing.md"}``.
            min_score: drop hits less similar than this (cosine similarity).

        Raises:
            EmbedderMismatch: the knowledge base was built by another embedder.
        """
        with self._tracer.start_as_current_span(
            "knowledge.search",
            attributes={"hivewire.tenant": tenant, "hivewire.knowledge.kb": kb, "hivewire.knowledge.k": k},
        ) as span:
            key = (
                tenant,
                kb,
                self._versions.get((tenant, kb), 0),
                query,
                k,
                json.dumps(where, sort_keys=True, default=str) if where else None,
                min_score,
            )
            cached = self.cache.get(key)
            span.set_attribute("hivewire.knowledge.cache_hit", cached is not None)
            if cached is not None:
                return list(cached)
            hits = await asyncio.to_thread(self._search, tenant, kb, query, k, where, min_score)
            self.cache.put(key, tuple(hits))
            return hits

    async def delete_source(self, tenant: str, kb: str, source: str) -> int:
        """Remove a document's passages; returns how many there were."""
        try:
            return await asyncio.to_thread(self._delete_source, tenant, kb, source)
        finally:
            self._changed(tenant, kb)

    async def stats(self, tenant: str, kb: str) -> Stats:
        """How many passages and documents the knowledge base holds, and its content's fingerprint."""
        return await asyncio.to_thread(self._stats, tenant, kb)

    async def bases(self, tenant: str) -> dict[str, Stats]:
        """``tenant``'s knowledge bases that hold anything, and their sizes, by name.

        (A search of a base that was never filled leaves an empty collection behind.)
        """
        return await asyncio.to_thread(self._bases, subjects.token("tenant", tenant))

    def _bases(self, tenant: str) -> dict[str, Stats]:
        names = sorted(
            str((collection.metadata or {}).get("kb"))
            for collection in self._client.list_collections()
            if (collection.metadata or {}).get("tenant") == tenant
        )
        sized = {name: self._stats(tenant, name) for name in names}
        return {name: stats for name, stats in sized.items() if stats.passages}

    def _changed(self, tenant: str, kb: str) -> None:
        # A new version makes every cached result of the knowledge base unreachable; they age out.
        self._versions[(tenant, kb)] = self._versions.get((tenant, kb), 0) + 1

    def _collection(self, tenant: str, kb: str) -> Collection:
        key = (subjects.token("tenant", tenant), subjects.token("knowledge base", kb))
        collection = self._collections.get(key)
        if collection is None:
            name = "hw-" + hashlib.sha256(f"{tenant}\x00{kb}".encode()).hexdigest()[:24]
            configuration: dict[str, Any] = {"hnsw": {"space": "cosine"}}
            if self._function is not None:
                # Recorded so that plain chromadb can embed query texts for this collection.
                configuration["embedding_function"] = self._function
            collection = self._client.get_or_create_collection(
                name,
                metadata={"tenant": tenant, "kb": kb, "embedder": self._embedder_id},
                configuration=configuration,  # type: ignore[arg-type]
                # Not passed here: Chroma would refuse a mismatch with its own, vaguer error.
                embedding_function=None,
            )
            recorded = str((collection.metadata or {}).get("embedder") or _LEGACY_EMBEDDER)
            if recorded != self._embedder_id:
                raise EmbedderMismatch(tenant, kb, recorded, self._embedder_id)
            self._collections[key] = collection
        return collection

    def _embed(self, texts: list[str]) -> Vectors:
        with self._tracer.start_as_current_span(
            "knowledge.embed",
            attributes={
                "gen_ai.operation.name": "embeddings",
                "gen_ai.request.model": self._embedder.model,
                "hivewire.knowledge.embedder": self._embedder.kind,
                "hivewire.knowledge.texts": len(texts),
            },
        ):
            return self._embedder.embed(texts)

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
            vectors = self._embed([_embedded_text(chunk) for chunk in batch])
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
        # No count() first to skip embedding for an empty knowledge base: it costs more than the query
        # on a large one (about 2 ms at 30k passages), and querying an empty collection is no error.
        vector = self._embed([query])
        with self._tracer.start_as_current_span(
            "knowledge.query",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "db.system": "chromadb",
                "db.operation.name": "query",
                "db.collection.name": collection.name,
                "db.chromadb.n_results": k,
                **self._server_attributes,
            },
        ) as span:
            found = collection.query(
                query_embeddings=vector,
                n_results=k,
                where=where,
                include=["documents", "metadatas", "distances"],
            )
            span.set_attribute("db.response.returned_rows", len(found["ids"][0]))
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
        found = collection.get(include=["metadatas"])
        metadatas = found["metadatas"] or []
        fingerprint = hashlib.sha256("\n".join(sorted(found["ids"])).encode()).hexdigest()[:32]
        return Stats(
            passages=len(metadatas),
            sources=len({str(m.get("source")) for m in metadatas}),
            fingerprint=fingerprint,
        )

    def _close(self) -> None:
        # HttpClient keeps an httpx session per client and per internal admin client, and
        # chromadb's close() releases neither: their sockets would leak (ResourceWarning).
        admin = getattr(self._client, "_admin_client", None)
        for api in (getattr(self._client, "_server", None), getattr(admin, "_server", None)):
            session = getattr(api, "_session", None)
            if session is not None:
                session.close()
        close = getattr(self._client, "close", None)
        if callable(close):
            close()
        self._collections.clear()
        if self._owns_embedder:
            self._embedder.close()


def _embedded_text(chunk: Chunk) -> str:
    # The title is context the passage leaves implicit: its first line is only the section.
    return f"{chunk.title}\n{chunk.text}"
