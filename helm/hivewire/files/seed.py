"""Ingest a folder of documents (default: the sample articles in the image) into a tenant's knowledge base.

It goes through the knowledge agent's ``ingest`` skill over the bus, as ``hivewire up`` does, so
the agent stays the only writer of its store. Settings: ``SEED_TENANT``, ``SEED_PATH`` (.md,
.txt and .html files), ``SEED_WAIT`` (seconds to wait for the agent), and ``HIVEWIRE_*``.
Used by the chart's seed Job and by k8s/jobs/seed-knowledge.yaml (the same text).
"""

import asyncio
import os
import sys
import time
from pathlib import Path

import knowledge
from agents.mesh import Mesh
from agents.settings import AgentSettings
from bus.client import Bus
from knowledge.messages import IngestReply, IngestRequest

FORMATS = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".html": "html", ".htm": "html"}


def documents(folder: Path) -> list[IngestRequest]:
    """Every document under ``folder``, its path relative to the folder as its source."""
    paths = sorted(path for path in folder.rglob("*") if path.suffix in FORMATS)
    return [
        IngestRequest(
            source=str(path.relative_to(folder)), text=path.read_text(), format=FORMATS[path.suffix]
        )
        for path in paths
    ]


async def main(tenant: str, folder: Path, wait: float) -> int:
    requests = documents(folder)
    settings = AgentSettings()
    bus = await Bus.connect(settings, name="hivewire-seed")
    try:
        mesh = await Mesh.open(bus, settings)
        deadline = time.monotonic() + wait
        while "knowledge" not in {agent.name for agent in await mesh.registry.agents()}:
            if time.monotonic() > deadline:
                print("seed: the knowledge agent did not register in time", file=sys.stderr)
                return 1
            await asyncio.sleep(2)
        caller, added = mesh.caller(tenant), 0
        for request in requests:
            reply = await caller.call("knowledge", "ingest", request, IngestReply, timeout=120)
            added += reply.added
        print(f"seed: tenant {tenant}: {len(requests)} documents from {folder}, {added} new passages")
    finally:
        await bus.close()
    return 0


SAMPLES = Path(knowledge.__file__).parent / "samples" / "support"
TENANT = os.environ.get("SEED_TENANT") or "demo"
FOLDER = Path(os.environ.get("SEED_PATH") or SAMPLES)
sys.exit(asyncio.run(main(TENANT, FOLDER, float(os.environ.get("SEED_WAIT") or 300))))
