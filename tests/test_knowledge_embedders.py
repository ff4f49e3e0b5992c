"""Choosing an embedder: OpenAI embeddings through the openai client, and no mixing of embedders in a
knowledge base."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from knowledge.chunking import chunk_markdown
from knowledge.embedders import ChromaDefaultEmbedder, OpenAIEmbedder, embedder_from_settings, identity
from knowledge.embeddings import MODEL_NAME, MiniLMEmbedder
from knowledge.errors import EmbedderMismatch, EmbeddingError
from knowledge.settings import KnowledgeSettings
from knowledge.store import KnowledgeStore
from tests.openai_server import OpenAIServer

PASSWORD = "# Password\n\n## Reset link expired\n\nReset links last 60 minutes. Ask for a new one.\n"
INVOICES = "# Invoices\n\n## When invoices arrive\n\nInvoices are emailed on the first day of each month.\n"


@pytest.fixture(scope="module")
def embeddings_server() -> Iterator[OpenAIServer]:
    """The OpenAI-compatible test server, answering /v1/embeddings too."""
    with OpenAIServer(embeddings=True) as server:
        yield server


@pytest.fixture
def openai_embedder(embeddings_server: OpenAIServer) -> Iterator[OpenAIEmbedder]:
    embeddings_server.clear()
    embedder = OpenAIEmbedder(
        model="text-embedding-3-small", base_url=embeddings_server.url, api_key="test", batch_size=2
    )
    yield embedder
    embedder.close()


def test_openai_embeddings_come_from_the_endpoint_in_order_and_in_batches(
    openai_embedder: OpenAIEmbedder, embeddings_server: OpenAIServer
) -> None:
    texts = ["reset my password", "password reset link", "monthly invoices", "invoices by email", "hello"]
    vectors = openai_embedder.embed(texts)
    assert vectors.shape == (5, 1536)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert np.array_equal(openai_embedder.embed(texts[2:3])[0], vectors[2])
    requests = embeddings_server.embedding_requests
    assert [r["input"] for r in requests[:3]] == [texts[0:2], texts[2:4], texts[4:5]]
    assert {r["model"] for r in requests} == {"text-embedding-3-small"}
    assert identity(openai_embedder) == "openai/text-embedding-3-small"


def test_an_endpoint_without_embeddings_is_a_clear_error() -> None:
    with OpenAIServer() as chat_only:
        embedder = OpenAIEmbedder(model="text-embedding-3-small", base_url=chat_only.url, api_key="test")
        try:
            with pytest.raises(EmbeddingError, match=r"openai/text-embedding-3-small failed") as raised:
                embedder.embed(["hello"])
        finally:
            embedder.close()
    assert raised.value.embedder == "openai/text-embedding-3-small"


async def test_a_store_searches_with_openai_embeddings(
    openai_embedder: OpenAIEmbedder, tmp_path: Path
) -> None:
    store = KnowledgeStore.open(path=tmp_path / "chroma", embedder=openai_embedder)
    try:
        await store.ingest("acme", "help", "password.md", chunk_markdown(PASSWORD, source="password.md"))
        await store.ingest("acme", "help", "invoices.md", chunk_markdown(INVOICES, source="invoices.md"))
        (hit, *_) = await store.search("acme", "help", "when are invoices emailed?")
    finally:
        await store.close()
    assert hit.source == "invoices.md"


async def test_a_knowledge_base_refuses_a_second_embedder(
    openai_embedder: OpenAIEmbedder, tmp_path: Path
) -> None:
    minilm = KnowledgeStore.open(path=tmp_path / "chroma", embedder=MiniLMEmbedder())
    openai = KnowledgeStore.open(path=tmp_path / "chroma", embedder=openai_embedder)
    try:
        await minilm.ingest("acme", "help", "password.md", chunk_markdown(PASSWORD, source="password.md"))
        with pytest.raises(EmbedderMismatch) as raised:
            await openai.search("acme", "help", "reset link")
        with pytest.raises(EmbedderMismatch):
            await openai.ingest("acme", "help", "invoices.md", chunk_markdown(INVOICES, source="invoices.md"))
        # Another knowledge base of the same tenant can use another embedder.
        await openai.ingest("acme", "hosted", "invoices.md", chunk_markdown(INVOICES, source="invoices.md"))
        assert (await minilm.stats("acme", "help")).passages == 1
    finally:
        await openai.close()
        await minilm.close()
    error = raised.value
    assert (error.tenant, error.kb) == ("acme", "help")
    assert (error.recorded, error.configured) == (f"minilm/{MODEL_NAME}", "openai/text-embedding-3-small")
    assert "HIVEWIRE_EMBEDDINGS" in str(error)


def test_the_setting_picks_the_embedder_and_openai_falls_back_to_the_llm_endpoint(
    embeddings_server: OpenAIServer,
) -> None:
    assert isinstance(embedder_from_settings(KnowledgeSettings(_env_file=None)), MiniLMEmbedder)  # type: ignore[call-arg]
    settings = KnowledgeSettings(
        _env_file=None,  # type: ignore[call-arg]
        embeddings="openai",
        llm_base_url=embeddings_server.url,
        llm_api_key="test",  # type: ignore[arg-type]
    )
    embedder = embedder_from_settings(settings)
    try:
        assert isinstance(embedder, OpenAIEmbedder)
        assert embedder.embed(["hello"]).shape == (1, 1536)
    finally:
        embedder.close()
    # Chroma's default downloads its model when it first embeds, not when it is chosen.
    chroma = embedder_from_settings(KnowledgeSettings(_env_file=None, embeddings="chroma-default"))  # type: ignore[call-arg]
    assert isinstance(chroma, ChromaDefaultEmbedder)
    assert identity(chroma) == "chroma-default/all-MiniLM-L6-v2"
    with pytest.raises(ValueError, match="embeddings"):
        KnowledgeSettings(_env_file=None, embeddings="word2vec")  # type: ignore[call-arg,arg-type]


async def test_a_chroma_default_collection_records_chromas_function(tmp_path: Path) -> None:
    store = KnowledgeStore.open(path=tmp_path / "chroma", embedder=ChromaDefaultEmbedder())
    try:
        # Creating (and counting) a knowledge base embeds nothing, so nothing is downloaded.
        assert (await store.stats("acme", "help")).passages == 0
    finally:
        await store.close()
    import chromadb
    from chromadb.config import Settings

    with chromadb.PersistentClient(
        path=str(tmp_path / "chroma"), settings=Settings(anonymized_telemetry=False)
    ) as client:
        (collection,) = client.list_collections()
        assert (collection.metadata or {})["embedder"] == "chroma-default/all-MiniLM-L6-v2"
        assert collection.configuration_json["embedding_function"]["name"] == "default"
