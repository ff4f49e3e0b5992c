"""Retrieval quality on the sample knowledge base: passages + offline embeddings find the right section."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import numpy as np

from knowledge.chunking import chunk_markdown
from knowledge.embeddings import MiniLMEmbedder

SAMPLES = Path(str(files("knowledge") / "samples" / "support"))
LABELLED = Path(__file__).parent / "data" / "retrieval_set.json"


def test_recall_at_5_over_the_labelled_questions_is_at_least_0_9() -> None:
    chunks = [
        chunk
        for article in sorted(SAMPLES.glob("*.md"))
        for chunk in chunk_markdown(article.read_text(), source=article.name)
    ]
    embedder = MiniLMEmbedder()
    # The title is context the passage text leaves implicit (its first line is only the section).
    passages = embedder.embed([f"{c.title}\n{c.text}" for c in chunks])
    questions = json.loads(LABELLED.read_text())["questions"]
    assert len(questions) >= 40
    queries = embedder.embed([q["question"] for q in questions])
    top5 = np.argsort(-(queries @ passages.T), axis=1)[:, :5]
    misses = []
    for question, best in zip(questions, top5, strict=True):
        found = [chunks[i] for i in best]
        if not any(
            c.source == question["source"] and _same_section(c.heading, question["heading"]) for c in found
        ):
            misses.append(question["question"])
    recall = 1 - len(misses) / len(questions)
    print(f"recall@5 = {recall:.3f} over {len(questions)} questions and {len(chunks)} passages")
    assert recall >= 0.9, f"recall@5 {recall:.3f}; missed: {misses}"


def _same_section(path: str, heading: str) -> bool:
    """A labelled heading names the leaf of the passage's heading path ("" is the summary)."""
    return path == heading if not heading else path == heading or path.endswith(f" > {heading}")
