"""The knowledge store against a `chroma run` server: the same behaviour as embedded, and nothing leaks."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.children import die_with_parent
from knowledge.chunking import chunk_markdown
from knowledge.embeddings import MiniLMEmbedder
from knowledge.settings import KnowledgeSettings
from knowledge.store import KnowledgeStore

CHROMA = Path(sys.executable).parent / "chroma"
PASSWORD = "# Password\n\n## Reset link expired\n\nReset links last 60 minutes. Ask for a new one.\n"
INVOICES = "# Invoices\n\n## When invoices arrive\n\nInvoices are emailed on the first day of each month.\n"
_READY_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers_heartbeat(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A `chroma run` server (from the chromadb package) on a free loopback port, for this module."""
    folder = tmp_path_factory.mktemp("chroma-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with (folder / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [str(CHROMA), "run", "--path", str(folder / "data"), "--port", str(port), "--host", "127.0.0.1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False", "NO_COLOR": "1"},
            preexec_fn=die_with_parent(),
        )
    try:
        deadline = time.monotonic() + _READY_TIMEOUT
        while not _answers_heartbeat(url):
            if server.poll() is not None or time.monotonic() > deadline:
                output = (folder / "server.log").read_text(errors="replace")
                raise RuntimeError(f"chroma run did not answer on {url}:\n{output}")
            time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


async def test_ingest_search_and_tenant_isolation_through_the_server(
    chroma_url: str, embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    store = KnowledgeStore.open(path=tmp_path / "unused", url=chroma_url, embedder=embedder)
    try:
        first = await store.ingest(
            "acme", "help", "password.md", chunk_markdown(PASSWORD, source="password.md")
        )
        again = await store.ingest(
            "acme", "help", "password.md", chunk_markdown(PASSWORD, source="password.md")
        )
        await store.ingest("acme", "help", "invoices.md", chunk_markdown(INVOICES, source="invoices.md"))
        (hit, *_) = await store.search("acme", "help", "my reset link stopped working")
        assert (first.added, again.unchanged) == (1, 1)
        assert (hit.source, hit.heading) == ("password.md", "Reset link expired")
        assert hit.score > 0.4
        assert await store.search("globex", "help", "reset link") == []
        assert await store.search("acme", "other-kb", "reset link") == []
        assert (await store.stats("acme", "help")).sources == 2
        assert await store.delete_source("acme", "help", "invoices.md") == 1
    finally:
        await store.close()
    # Everything went to the server: no embedded data folder was made.
    assert not (tmp_path / "unused").exists()


async def test_the_url_setting_selects_the_server(
    chroma_url: str, embedder: MiniLMEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVEWIRE_CHROMA_URL", chroma_url)
    monkeypatch.setenv("HIVEWIRE_CHROMA_PATH", str(tmp_path / "unused"))
    settings = KnowledgeSettings(_env_file=None)  # type: ignore[call-arg]
    writer = KnowledgeStore.from_settings(settings, embedder=embedder)
    await writer.ingest("initech", "help", "password.md", chunk_markdown(PASSWORD, source="password.md"))
    await writer.close()
    # Another store (another process, in production) sees the same knowledge base.
    reader = KnowledgeStore.from_settings(settings, embedder=embedder)
    try:
        (hit,) = await reader.search("initech", "help", "reset link validity", k=1)
    finally:
        await reader.close()
    assert hit.heading == "Reset link expired"
    assert not (tmp_path / "unused").exists()


def _connections_to(port: int) -> int:
    """TCP connections this process holds open to ``port`` on loopback (Linux: read from /proc)."""
    ours = set()
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                ours.add(target[8:-1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        if remote_port == port and fields[9] in ours:
            count += 1
    return count


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
async def test_closing_the_store_closes_its_connections(chroma_url: str, embedder: MiniLMEmbedder) -> None:
    port = int(chroma_url.rsplit(":", 1)[1])
    before = _connections_to(port)
    store = KnowledgeStore.open(path=Path("unused"), url=chroma_url, embedder=embedder)
    await store.search("acme", "help", "reset link")
    # chromadb's HttpClient holds two pooled connections (its own and its admin client's).
    assert _connections_to(port) > before
    await store.close()
    assert _connections_to(port) == before
