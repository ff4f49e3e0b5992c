"""The support desk's offline classifier, measured on a labelled set of questions.

Run: ``.venv/bin/python bench/desk_classifier.py`` (``--split tune`` or ``--split held-out`` for one
half only). Everything runs in this process, offline, as the desk does it without a model:
the knowledge agent's :class:`~knowledge.classify.ExampleClassifier` with the default embedder
(MiniLM) scores each question against the example phrasings of ``agents/desk/labels.py``, and
triage's own readings (``read_intent``, ``read_sentiment``) turn the scores into labels. The
hand-off is triage's decision too (``handoff_reason``), on a search of the sample knowledge base
(20 help-center articles, ingested into a temporary embedded Chroma).

The set is ``tests/data/desk_questions.json``: 120 questions in English, German, French and
Spanish, each with the intent and sentiment a person reads in it (``unknown`` intent: an
off-topic question), split in two halves. Tune on ``tune``; ``held-out`` only tells whether the
tuning generalises.

Reported per half: accuracy of intent and sentiment (overall, per label, per language), their
confusion tables (rows: expected, columns: read), and how often a turn would be handed to a
person: among neutral questions (should be never), neutral off-topic ones, and negative ones.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import tempfile
from importlib.resources import files
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.desk.labels import INTENTS, SENTIMENTS  # noqa: E402
from agents.desk.triage import PASSAGES, RELEVANT, RESOLVES, handoff_reason, read_intent, read_sentiment  # noqa: E402
from knowledge.chunking import chunk_markdown  # noqa: E402
from knowledge.classify import ExampleClassifier  # noqa: E402
from knowledge.embeddings import MiniLMEmbedder  # noqa: E402
from knowledge.store import KnowledgeStore  # noqa: E402

QUESTIONS = ROOT / "tests" / "data" / "desk_questions.json"
SAMPLES = Path(str(files("knowledge") / "samples" / "support"))

Row = dict[str, Any]


def load(split: str | None = None) -> list[Row]:
    """The labelled questions, or one half of them."""
    questions: list[Row] = json.loads(QUESTIONS.read_text())["questions"]
    return [q for q in questions if split is None or q["split"] == split]


def classify(classifier: ExampleClassifier, questions: list[Row]) -> list[Row]:
    """Each question with the intent and sentiment the offline desk reads in it."""
    read = []
    for question in questions:
        _, intents = classifier.classify(question["text"], INTENTS)
        _, sentiments = classifier.classify(question["text"], SENTIMENTS)
        read.append(
            {**question, "read_intent": read_intent(intents), "read_sentiment": read_sentiment(sentiments)}
        )
    return read


def articles() -> list[tuple[str, str]]:
    """The sample knowledge base: each article's name and text."""
    return [(article.name, article.read_text()) for article in sorted(SAMPLES.glob("*.md"))]


async def resolvable(questions: list[Row], embedder: MiniLMEmbedder) -> dict[str, bool]:
    """Whether the sample knowledge base answers each question, as triage judges it."""
    with tempfile.TemporaryDirectory() as folder:
        store = KnowledgeStore.open(path=Path(folder) / "chroma", embedder=embedder, cache_ttl=0)
        try:
            for name, text in articles():
                await store.ingest("bench", "help", name, chunk_markdown(text, source=name))
            found = {}
            for question in questions:
                hits = await store.search("bench", "help", question["text"], k=PASSAGES)
                found[question["text"]] = any(h.score >= RESOLVES for h in hits if h.score >= RELEVANT)
            return found
        finally:
            await store.close()


def accuracy(rows: list[Row], key: str) -> str:
    right = sum(r[key] == r[f"read_{key}"] for r in rows)
    return f"{right / len(rows):.0%} ({right}/{len(rows)})" if rows else "-"


def report(title: str, rows: list[Row], handoffs: dict[str, bool]) -> str:
    """One half's tables, in Markdown."""
    lines = [f"## {title}: {len(rows)} questions", ""]
    lines += [
        "| | intent | sentiment |",
        "|---|---|---|",
        f"| all | {accuracy(rows, 'intent')} | {accuracy(rows, 'sentiment')} |",
    ]
    for language in sorted({r["language"] for r in rows}):
        some = [r for r in rows if r["language"] == language]
        lines.append(f"| {language} | {accuracy(some, 'intent')} | {accuracy(some, 'sentiment')} |")
    for key, labels in (("intent", [*INTENTS, "unknown"]), ("sentiment", list(SENTIMENTS))):
        counts = collections.Counter((r[key], r[f"read_{key}"]) for r in rows)
        lines += ["", f"{key} (rows: expected, columns: read)", ""]
        lines.append("| expected | " + " | ".join(labels) + " | accuracy |")
        lines.append("|---" * (len(labels) + 2) + "|")
        for label in labels:
            total = sum(counts[(label, other)] for other in labels)
            if total:
                cells = " | ".join(str(counts[(label, other)] or ".") for other in labels)
                lines.append(f"| {label} | {cells} | {counts[(label, label)] / total:.0%} |")
    lines += ["", "hand-offs", "", "| questions | handed to a person |", "|---|---|"]
    groups = {
        "neutral": [r for r in rows if r["sentiment"] == "neutral"],
        "neutral, off-topic": [r for r in rows if r["sentiment"] == "neutral" and r["intent"] == "unknown"],
        "negative": [r for r in rows if r["sentiment"] == "negative"],
    }
    for name, some in groups.items():
        handed = sum(handoffs[r["text"]] for r in some)
        lines.append(
            f"| {name} | {handed / len(some):.0%} ({handed}/{len(some)}) |" if some else f"| {name} | - |"
        )
    return "\n".join(lines)


async def main(split: str | None) -> None:
    embedder = MiniLMEmbedder()
    questions = load()
    rows = classify(ExampleClassifier(embedder), questions)
    answered = await resolvable(questions, embedder)
    handoffs = {
        r["text"]: bool(handoff_reason(r["read_intent"], r["read_sentiment"], resolvable=answered[r["text"]]))
        for r in rows
    }
    halves = [split] if split else ["tune", "held-out"]
    print("\n\n".join(report(half, [r for r in rows if r["split"] == half], handoffs) for half in halves))
    if not split:
        print("\n\n" + report("all", rows, handoffs))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--split", choices=["tune", "held-out"], help="one half only")
    asyncio.run(main(parser.parse_args().split))
