"""The applications ``hivewire up`` runs: each one's agent processes, entry skill and sample documents."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import knowledge
from agents.research.settings import CORPUS

__all__ = ["APPS", "KNOWLEDGE", "App"]

SAMPLES = Path(knowledge.__file__).parent / "samples" / "support"
KNOWLEDGE = "knowledge.agent:knowledge"


@dataclass(frozen=True)
class App:
    """An application ``hivewire up --app NAME`` runs: its agents, its entry skill, its samples."""

    agents: tuple[tuple[str, int], ...]  # (MODULE:ATTR, replicas)
    entry: tuple[str, str]  # the agent and skill a conversation talks to
    samples: Path  # Markdown documents ingested into ``kb``
    kb: str | None  # the knowledge base (None: the knowledge agent's default)
    example: str


APPS = {
    "desk": App(
        agents=((KNOWLEDGE, 1), ("agents.desk.triage:triage", 1), ("agents.desk.answer:answer", 1)),
        entry=("triage", "chat"),
        samples=SAMPLES,
        kb=None,
        example="How do I reset my password?",
    ),
    "research": App(
        agents=(
            (KNOWLEDGE, 1),
            ("agents.research.planner:planner", 1),
            ("agents.research.analyst:analyst", 2),
            ("agents.research.writer:writer", 1),
        ),
        entry=("planner", "chat"),
        samples=CORPUS,
        kb="research",
        example="Assess the market for heat pumps in the Nordics",
    ),
}
