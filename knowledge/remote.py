"""The running knowledge agent as a store: ``hivewire knowledge`` while a mesh runs goes through it.

It has the :class:`~knowledge.store.KnowledgeStore` methods the command line
uses, each a call to the agent over the bus. Documents ingested this way reach
the agent that serves searches at once (its own store writes them and forgets
its cached results), with no second process opening the same Chroma folder.
"""

from __future__ import annotations

from collections.abc import Sequence

from agents.mesh import Mesh
from knowledge.chunking import Chunk, content_id
from knowledge.messages import (
    DeleteReply,
    DeleteRequest,
    DocumentPassage,
    IngestReply,
    IngestRequest,
    SearchReply,
    SearchRequest,
    StatsReply,
    StatsRequest,
)
from knowledge.store import Hit, IngestResult, Stats

__all__ = ["AGENT", "RemoteStore"]

AGENT = "knowledge"
# Embedding a long document's passages takes a while on a laptop's CPU.
_INGEST_TIMEOUT = 300.0


class RemoteStore:
    """The knowledge agent's skills, called for any tenant (the caller is trusted with the bus)."""

    def __init__(self, mesh: Mesh, *, timeout: float) -> None:
        self._mesh = mesh
        self._timeout = timeout

    async def ingest(self, tenant: str, kb: str, source: str, chunks: Sequence[Chunk]) -> IngestResult:
        """Make ``source``'s passages exactly ``chunks`` (the agent embeds and writes them)."""
        passages = tuple(DocumentPassage(text=c.text, title=c.title, heading=c.heading) for c in chunks)
        reply = await self._mesh.caller(tenant).call(
            AGENT,
            "ingest",
            IngestRequest(source=source, kb=kb, passages=passages),
            IngestReply,
            timeout=_INGEST_TIMEOUT,
        )
        return IngestResult(
            source=source, added=reply.added, removed=reply.removed, unchanged=reply.unchanged
        )

    async def search(
        self, tenant: str, kb: str, query: str, *, k: int = 5, min_score: float | None = None
    ) -> list[Hit]:
        """The passages closest in meaning to ``query``, best first."""
        reply = await self._mesh.caller(tenant).call(
            AGENT,
            "search",
            SearchRequest(query=query, k=k, kb=kb, min_score=min_score),
            SearchReply,
            timeout=self._timeout,
        )
        return [
            Hit(
                id=content_id(p.source, p.text),  # what the store's id is: found again by it
                text=p.text,
                source=p.source,
                title=p.title,
                heading=p.heading,
                score=p.score,
            )
            for p in reply.passages
        ]

    async def stats(self, tenant: str, kb: str) -> Stats:
        """How many passages and documents the knowledge base holds."""
        reply = await self._mesh.caller(tenant).call(
            AGENT, "stats", StatsRequest(kb=kb), StatsReply, timeout=self._timeout
        )
        return Stats(passages=reply.passages, sources=reply.sources, fingerprint=reply.fingerprint)

    async def delete_source(self, tenant: str, kb: str, source: str) -> int:
        """Remove a document's passages; how many went."""
        reply = await self._mesh.caller(tenant).call(
            AGENT, "delete", DeleteRequest(source=source, kb=kb), DeleteReply, timeout=self._timeout
        )
        return reply.removed
