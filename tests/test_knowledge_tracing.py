"""Spans of the knowledge store: a search shows its embedding and its Chroma query under the caller's span."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from knowledge.chunking import chunk_markdown
from knowledge.embeddings import MODEL_NAME, MiniLMEmbedder
from knowledge.store import KnowledgeStore

PASSWORD = "# Password\n\n## Reset link expired\n\nReset links last 60 minutes. Ask for a new one.\n"


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_a_search_traces_the_embedding_and_the_chroma_query_under_the_callers_span(
    tmp_path: Path,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    store = KnowledgeStore.open(
        path=tmp_path / "chroma", embedder=MiniLMEmbedder(), cache_ttl=30, tracer_provider=provider
    )
    try:
        await store.ingest("acme", "help", "password.md", chunk_markdown(PASSWORD, source="password.md"))
        (ingest_embed,) = exporter.get_finished_spans()
        exporter.clear()
        with provider.get_tracer("test").start_as_current_span("caller") as caller:
            await store.search("acme", "help", "reset link", k=3)
            await store.search("acme", "help", "reset link", k=3)  # from the cache
    finally:
        await store.close()

    assert ingest_embed.name == "knowledge.embed"
    assert ingest_embed.attributes is not None
    assert ingest_embed.attributes["hivewire.knowledge.texts"] == 1
    ours = [span for span in exporter.get_finished_spans() if span.name.startswith("knowledge.")]
    search, embed, query, cached = sorted(ours, key=lambda span: span.start_time or 0)
    assert (search.name, embed.name, query.name, cached.name) == (
        "knowledge.search",
        "knowledge.embed",
        "knowledge.query",
        "knowledge.search",
    )
    assert {span.context.trace_id for span in (search, embed, query, cached)} == {
        caller.get_span_context().trace_id
    }
    assert _parent(search) == _parent(cached) == caller.get_span_context().span_id
    assert _parent(embed) == _parent(query) == search.context.span_id
    assert dict(embed.attributes or {}) == {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.request.model": MODEL_NAME,
        "hivewire.knowledge.embedder": "minilm",
        "hivewire.knowledge.texts": 1,
    }
    attributes = dict(query.attributes or {})
    assert attributes["db.system"] == "chromadb"
    assert attributes["db.operation.name"] == "query"
    assert str(attributes["db.collection.name"]).startswith("hw-")
    assert attributes["db.chromadb.n_results"] == 3
    assert attributes["db.response.returned_rows"] == 1
    assert (search.attributes or {})["hivewire.knowledge.cache_hit"] is False
    assert (cached.attributes or {})["hivewire.knowledge.cache_hit"] is True
