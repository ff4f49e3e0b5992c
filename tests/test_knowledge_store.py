"""The knowledge store: ingesting is idempotent, edits replace passages, tenants never see each other,
and search finds the labelled passages of the sample knowledge base."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from importlib.resources import files
from pathlib import Path

import pytest

from knowledge.cache import SearchCache
from knowledge.chunking import chunk_markdown
from knowledge.embeddings import MiniLMEmbedder
from knowledge.store import KnowledgeStore

SAMPLES = Path(str(files("knowledge") / "samples" / "support"))
LABELLED = Path(__file__).parent / "data" / "retrieval_set.json"

PASSWORD = """# Resetting your password

Use the sign-in page to reset a forgotten password.

## Reset link expired

Reset links expire after 60 minutes. Request a new one from the sign-in page.
"""


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def _articles() -> list[tuple[str, str]]:
    return [(article.name, article.read_text()) for article in sorted(SAMPLES.glob("*.md"))]


@pytest.fixture
async def store(tmp_path: Path, embedder: MiniLMEmbedder) -> AsyncIterator[KnowledgeStore]:
    store = KnowledgeStore.open(path=tmp_path / "chroma", embedder=embedder)
    yield store
    await store.close()


async def test_reingesting_unchanged_content_is_a_no_op_and_edits_replace_passages(
    store: KnowledgeStore,
) -> None:
    first = await store.ingest("acme", "help", "password.md", chunk_markdown(PASSWORD, source="password.md"))
    again = await store.ingest("acme", "help", "password.md", chunk_markdown(PASSWORD, source="password.md"))
    edited = PASSWORD.replace("60 minutes", "2 hours")
    changed = await store.ingest("acme", "help", "password.md", chunk_markdown(edited, source="password.md"))
    assert (first.added, first.removed, first.unchanged) == (2, 0, 0)
    assert (again.added, again.removed, again.unchanged) == (0, 0, 2)
    assert (changed.added, changed.removed, changed.unchanged) == (1, 1, 1)
    (hit, *_) = await store.search("acme", "help", "how long is a reset link valid?")
    assert "2 hours" in hit.text
    assert hit.heading == "Reset link expired"
    assert (await store.stats("acme", "help")).passages == 2


async def test_a_tenant_never_searches_another_tenants_knowledge(store: KnowledgeStore) -> None:
    await store.ingest("acme", "help", "password.md", chunk_markdown(PASSWORD, source="password.md"))
    assert await store.search("globex", "help", "reset my password") == []
    assert await store.search("acme", "other-kb", "reset my password") == []
    assert await store.search("acme", "help", "reset my password")


async def test_filters_minimum_score_and_deleting_a_source(store: KnowledgeStore) -> None:
    await store.ingest("acme", "help", "password.md", chunk_markdown(PASSWORD, source="password.md"))
    await store.ingest(
        "acme",
        "help",
        "other.md",
        chunk_markdown("# Invoices\n\nInvoices arrive monthly.", source="other.md"),
    )
    only = await store.search("acme", "help", "reset", where={"source": "other.md"})
    assert {hit.source for hit in only} == {"other.md"}
    assert await store.search("acme", "help", "reset my password", min_score=0.99) == []
    assert await store.delete_source("acme", "help", "password.md") == 2
    assert {hit.source for hit in await store.search("acme", "help", "reset my password")} == {"other.md"}


async def test_recall_at_5_on_the_sample_knowledge_base(
    store: KnowledgeStore, tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    articles = _articles()
    for name, text in articles:
        await store.ingest("demo", "support", name, chunk_markdown(text, source=name))
    questions = json.loads(LABELLED.read_text())["questions"]
    found = 0
    for question in questions:
        hits = await store.search("demo", "support", question["question"], k=5)
        heading = question["heading"]
        if any(
            h.source == question["source"]
            and (h.heading == heading or (heading and h.heading.endswith(f" > {heading}")))
            for h in hits
        ):
            found += 1
    recall = found / len(questions)
    print(f"recall@5 through Chroma = {recall:.3f} over {len(questions)} questions")
    assert recall >= 0.9
    # Reopening the store finds everything again: nothing is held only in memory.
    reopened = KnowledgeStore.open(path=tmp_path / "chroma", embedder=embedder)
    assert (await reopened.stats("demo", "support")).sources == len(articles)
    await reopened.close()


def test_plain_chroma_reopens_a_collection_with_hivewires_embeddings_no_download(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = f"""
import chromadb, knowledge.chroma_embeddings  # registers the embedding function by name
from chromadb.config import Settings
from knowledge.chunking import chunk_markdown
from knowledge.embeddings import MiniLMEmbedder
from knowledge.store import KnowledgeStore
import asyncio
from pathlib import Path
store = KnowledgeStore.open(path=Path({str(tmp_path / "c")!r}), embedder=MiniLMEmbedder())
asyncio.run(store.ingest("acme", "help", "p.md", chunk_markdown({PASSWORD!r}, source="p.md")))
"""
    reopen = f"""
import chromadb, knowledge.chroma_embeddings
from chromadb.config import Settings
client = chromadb.PersistentClient(
    path={str(tmp_path / "c")!r}, settings=Settings(anonymized_telemetry=False)
)
(collection,) = client.list_collections()
found = client.get_collection(collection.name).query(query_texts=["reset link validity"], n_results=1)
print(found["metadatas"][0][0]["heading"])
"""
    for code in (script, reopen):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Reset link expired"


async def test_a_repeated_search_is_served_from_the_cache_until_this_process_changes_the_kb(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    store = KnowledgeStore.open(path=tmp_path / "chroma", embedder=embedder, cache_ttl=30)
    try:
        await store.ingest("acme", "help", "password.md", chunk_markdown(PASSWORD, source="password.md"))
        first = await store.search("acme", "help", "how long is a reset link valid?")
        again = await store.search("acme", "help", "how long is a reset link valid?")
        assert again == first
        assert (store.cache.hits, store.cache.misses) == (1, 1)
        # Anything that could change the answer is part of the key.
        await store.search("globex", "help", "how long is a reset link valid?")
        await store.search("acme", "help", "how long is a reset link valid?", k=1)
        await store.search("acme", "help", "how long is a reset link valid?", min_score=0.2)
        await store.search("acme", "help", "how long is a reset link valid?", where={"source": "password.md"})
        assert store.cache.hits == 1
        # An ingest or a delete by this store makes the next search go to Chroma again.
        edited = PASSWORD.replace("60 minutes", "2 hours")
        await store.ingest("acme", "help", "password.md", chunk_markdown(edited, source="password.md"))
        (hit, *_) = await store.search("acme", "help", "how long is a reset link valid?")
        assert "2 hours" in hit.text
        await store.delete_source("acme", "help", "password.md")
        assert await store.search("acme", "help", "how long is a reset link valid?") == []
        assert store.cache.hits == 1
    finally:
        await store.close()


async def test_another_writers_changes_show_once_the_cached_result_expires(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    reader = KnowledgeStore.open(path=tmp_path / "chroma", embedder=embedder, cache_ttl=0.5)
    writer = KnowledgeStore.open(path=tmp_path / "chroma", embedder=embedder)
    try:
        await writer.ingest("acme", "help", "password.md", chunk_markdown(PASSWORD, source="password.md"))
        (before, *_) = await reader.search("acme", "help", "how long is a reset link valid?")
        edited = PASSWORD.replace("60 minutes", "2 hours")
        await writer.ingest("acme", "help", "password.md", chunk_markdown(edited, source="password.md"))
        (cached, *_) = await reader.search("acme", "help", "how long is a reset link valid?")
        assert cached == before  # the reader cannot know another store changed the collection
        await asyncio.sleep(0.6)
        (fresh, *_) = await reader.search("acme", "help", "how long is a reset link valid?")
        assert "2 hours" in fresh.text
    finally:
        await writer.close()
        await reader.close()


def test_the_search_cache_keeps_the_most_recently_used_entries() -> None:
    cache = SearchCache[str](ttl=30, max_entries=2)
    cache.put("a", "A")
    cache.put("b", "B")
    assert cache.get("a") == "A"  # "b" is now the least recently used
    cache.put("c", "C")
    assert (cache.get("b"), cache.get("a"), cache.get("c")) == (None, "A", "C")
    off = SearchCache[str](ttl=0, max_entries=2)
    off.put("a", "A")
    assert off.get("a") is None
    assert len(off) == 0
