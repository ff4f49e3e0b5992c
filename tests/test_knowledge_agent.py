"""The knowledge agent on the mesh: ingest and search as skills, per tenant, within the caller's deadline."""

from __future__ import annotations

from pathlib import Path

from agents import Mesh
from bus import EmbeddedNats
from knowledge.agent import (
    BasesReply,
    BasesRequest,
    IngestReply,
    IngestRequest,
    SearchReply,
    SearchRequest,
    StatsReply,
    StatsRequest,
)
from tests.processes import agent_process

ARTICLE = "# Password\n\n## Reset link expired\n\nReset links last 60 minutes. Ask for a new one.\n"


async def test_ingest_then_search_through_the_agent_process(
    nats_server: EmbeddedNats, mesh: Mesh, tmp_path: Path
) -> None:
    async with agent_process(
        nats_server.url, "knowledge.agent:knowledge", HIVEWIRE_CHROMA_PATH=str(tmp_path / "chroma")
    ):
        acme = mesh.caller("acme", timeout=20)
        empty = await acme.call("knowledge", "stats", StatsRequest(), StatsReply)
        added = await acme.call(
            "knowledge", "ingest", IngestRequest(source="password.md", text=ARTICLE), IngestReply
        )
        before = await acme.call("knowledge", "stats", StatsRequest(), StatsReply)
        again = await acme.call(
            "knowledge", "ingest", IngestRequest(source="password.md", text=ARTICLE), IngestReply
        )
        unchanged = await acme.call("knowledge", "stats", StatsRequest(), StatsReply)
        found = await acme.call(
            "knowledge", "search", SearchRequest(query="my reset link stopped working"), SearchReply
        )
        other = await mesh.caller("globex").call(
            "knowledge", "search", SearchRequest(query="reset link"), SearchReply
        )
        rushed = await mesh.caller("acme").call(
            "knowledge", "search", SearchRequest(query="reset link"), SearchReply, timeout=0.04
        )
        bases = await acme.call("knowledge", "bases", BasesRequest(), BasesReply)
        none = await mesh.caller("globex").call("knowledge", "bases", BasesRequest(), BasesReply)
    assert (added.added, again.unchanged) == (1, 1)
    # The fingerprint follows the content: a new passage changes it, re-ingesting the same text does not.
    assert (empty.passages, before.passages, before.sources) == (0, 1, 1)
    assert empty.fingerprint != before.fingerprint == unchanged.fingerprint
    assert found.passages[0].heading == "Reset link expired"
    assert found.passages[0].score > 0.4
    assert not found.timed_out
    assert other.passages == ()
    # Too little time left to search: an empty answer that says so, not a timeout.
    assert rushed.timed_out
    assert rushed.passages == ()
    # The tenant's knowledge bases, sized; another tenant has none.
    assert [(b.name, b.documents, b.passages) for b in bases.bases] == [("default", 1, 1)]
    assert none.bases == ()
