"""What the knowledge agent takes and returns on the bus.

A module of its own, free of Chroma and the embedder, so that agents calling
the knowledge service import these types without loading either.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "BasesReply",
    "BasesRequest",
    "ClassifyReply",
    "ClassifyRequest",
    "DeleteReply",
    "DeleteRequest",
    "DocumentPassage",
    "IngestReply",
    "IngestRequest",
    "KnowledgeBase",
    "Passage",
    "SearchReply",
    "SearchRequest",
    "StatsReply",
    "StatsRequest",
]


class SearchRequest(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What to look for, in which knowledge base (the tenant comes from the request)."""

    query: str
    k: int = 5
    kb: str | None = None
    min_score: float | None = None
    source: str | None = None


class Passage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A passage found, with where it came from and how similar it is (cosine, 0..1)."""

    text: str
    source: str
    title: str
    heading: str
    score: float


class SearchReply(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The passages found, best first; ``timed_out`` when the deadline cut the search short."""

    passages: tuple[Passage, ...] = ()
    timed_out: bool = False


class DocumentPassage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A passage cut by the caller (from a PDF, say): its text (heading path first), title, heading."""

    text: str
    title: str = ""
    heading: str = ""


class IngestRequest(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One document to add or update: its text in a format, or its passages already cut.

    ``passages``, when given, are the document (``hivewire knowledge ingest``
    reads every format in its own process and sends them); ``text`` and
    ``format`` are then not used.
    """

    source: str
    text: str = ""
    format: Literal["markdown", "text", "html"] = "markdown"
    kb: str | None = None
    passages: tuple[DocumentPassage, ...] = ()


class DeleteRequest(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A document to remove from a knowledge base, by its source."""

    source: str
    kb: str | None = None


class DeleteReply(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """How many passages went with it (0: there was no such document)."""

    removed: int


class IngestReply(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What ingesting the document changed."""

    added: int
    removed: int
    unchanged: int


class StatsRequest(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Which knowledge base to describe (the agent's default when ``None``)."""

    kb: str | None = None


class StatsReply(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A knowledge base's size and content fingerprint (it changes with any passage).

    A tool that searches the base can key cached results by the fingerprint:
    a document ingested, changed or deleted makes every earlier result stale.
    """

    passages: int
    sources: int
    fingerprint: str


class ClassifyRequest(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A text and the labels to choose from, each with example texts."""

    text: str
    labels: dict[str, list[str]]

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("text is empty")
        if not self.labels or not all(self.labels.values()):
            raise ValueError("give at least one label, each with at least one example")


class ClassifyReply(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The closest label, its similarity (cosine, 0..1) and every label's."""

    label: str
    score: float
    scores: dict[str, float]


class BasesRequest(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Ask for the tenant's knowledge bases (nothing to say: the tenant comes from the request)."""


class KnowledgeBase(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One knowledge base: how many documents (sources) and passages it holds."""

    name: str
    documents: int
    passages: int


class BasesReply(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The tenant's knowledge bases, by name."""

    bases: tuple[KnowledgeBase, ...] = ()
