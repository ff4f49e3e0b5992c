"""The knowledge agent: search, ingest, delete and stats skills over the store, as its own mesh process.

Run it with ``hivewire agent run knowledge.agent:knowledge``. A search never
outlives its caller: it stops a little before the request's deadline and
answers with what it has (nothing) and ``timedOut: true``, instead of letting
the caller time out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from agents import Agent, AgentSettings, Context
from knowledge.chunking import Chunk, chunk_markdown, chunk_text, content_id
from knowledge.classify import ExampleClassifier
from knowledge.documents import html_to_markdown
from knowledge.messages import (
    BasesReply,
    BasesRequest,
    ClassifyReply,
    ClassifyRequest,
    DeleteReply,
    DeleteRequest,
    IngestReply,
    IngestRequest,
    KnowledgeBase,
    Passage,
    SearchReply,
    SearchRequest,
    StatsReply,
    StatsRequest,
)
from knowledge.settings import KnowledgeSettings
from knowledge.store import KnowledgeStore

__all__ = [
    "BasesReply",
    "BasesRequest",
    "ClassifyReply",
    "ClassifyRequest",
    "DeleteReply",
    "DeleteRequest",
    "IngestReply",
    "IngestRequest",
    "Passage",
    "SearchReply",
    "SearchRequest",
    "StatsReply",
    "StatsRequest",
    "knowledge",
]

# Time kept back from the caller's deadline to send the (empty) answer.
_REPLY_MARGIN = 0.05


@dataclass(frozen=True, slots=True)
class _Resources:
    store: KnowledgeStore
    default_kb: str
    classifier: ExampleClassifier


knowledge = Agent(
    "knowledge",
    description="Semantic search over each tenant's knowledge bases (Chroma, offline embeddings).",
    version="0.1.0",
)


@knowledge.lifespan
async def _open(settings: AgentSettings) -> AsyncIterator[_Resources]:
    # The store's own settings (data folder or server) live beside the agent's.
    own = KnowledgeSettings()
    # Loading the embedder takes about a second: off the event loop.
    store = await asyncio.to_thread(KnowledgeStore.from_settings, own)
    try:
        yield _Resources(
            store=store, default_kb=own.knowledge_base, classifier=ExampleClassifier(store.embedder)
        )
    finally:
        await store.close()


@knowledge.skill(tags=("search",), examples=('{"query": "how do I reset my password?"}',))
async def search(ctx: Context, request: SearchRequest) -> SearchReply:
    """Find the passages of the tenant's knowledge base closest in meaning to the query."""
    resources = ctx.resource(_Resources)
    where: dict[str, Any] | None = {"source": request.source} if request.source else None
    searching = resources.store.search(
        ctx.tenant,
        request.kb or resources.default_kb,
        request.query,
        k=max(1, min(request.k, 50)),
        where=where,
        min_score=request.min_score,
    )
    remaining = ctx.remaining()
    try:
        hits = await asyncio.wait_for(
            searching, None if remaining is None else max(0.0, remaining - _REPLY_MARGIN)
        )
    except TimeoutError:
        return SearchReply(timed_out=True)
    return SearchReply(
        passages=tuple(
            Passage(text=h.text, source=h.source, title=h.title, heading=h.heading, score=h.score)
            for h in hits
        )
    )


@knowledge.skill(tags=("ingest",))
async def ingest(ctx: Context, request: IngestRequest) -> IngestReply:
    """Add or update one document of the tenant's knowledge base."""
    resources = ctx.resource(_Resources)
    if request.passages:
        chunks = [
            Chunk(
                id=content_id(request.source, passage.text),
                text=passage.text,
                source=request.source,
                title=passage.title,
                heading=passage.heading,
                position=position,
            )
            for position, passage in enumerate(request.passages)
        ]
    elif request.format == "text":
        chunks = chunk_text(request.text, source=request.source)
    elif request.format == "html":
        chunks = chunk_markdown(html_to_markdown(request.text), source=request.source)
    else:
        chunks = chunk_markdown(request.text, source=request.source)
    result = await resources.store.ingest(
        ctx.tenant, request.kb or resources.default_kb, request.source, chunks
    )
    return IngestReply(added=result.added, removed=result.removed, unchanged=result.unchanged)


@knowledge.skill(tags=("ingest",))
async def delete(ctx: Context, request: DeleteRequest) -> DeleteReply:
    """Remove one document (all its passages) from the tenant's knowledge base."""
    resources = ctx.resource(_Resources)
    removed = await resources.store.delete_source(
        ctx.tenant, request.kb or resources.default_kb, request.source
    )
    return DeleteReply(removed=removed)


@knowledge.skill(tags=("stats",))
async def stats(ctx: Context, request: StatsRequest) -> StatsReply:
    """Count the passages and documents of a knowledge base, with a fingerprint of its content."""
    resources = ctx.resource(_Resources)
    found = await resources.store.stats(ctx.tenant, request.kb or resources.default_kb)
    return StatsReply(passages=found.passages, sources=found.sources, fingerprint=found.fingerprint)


@knowledge.skill(tags=("admin",))
async def bases(ctx: Context, request: BasesRequest) -> BasesReply:
    """The tenant's knowledge bases, with how many documents and passages each holds."""
    found = await ctx.resource(_Resources).store.bases(ctx.tenant)
    return BasesReply(
        bases=tuple(
            KnowledgeBase(name=name, documents=stats.sources, passages=stats.passages)
            for name, stats in found.items()
        )
    )


@knowledge.skill(tags=("classify",))
async def classify(ctx: Context, request: ClassifyRequest) -> ClassifyReply:
    """Pick the label whose examples are closest in meaning to the text (offline classification)."""
    resources = ctx.resource(_Resources)
    label, scores = await asyncio.to_thread(resources.classifier.classify, request.text, request.labels)
    return ClassifyReply(label=label, score=scores[label], scores=scores)
