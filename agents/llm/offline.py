"""Offline mode: without a model endpoint, answer with the passages' own sentences, and say so.

It is extractive, not generative: it picks the sentences of the retrieved
passages that share the most words with the question, keeps them in their
original order, and names where each came from. It never invents text, and
when nothing relevant was retrieved it says that instead of guessing.
"""

from __future__ import annotations

import re

from agents.llm.messages import ChatMessage, Completion, Passage, Usage

__all__ = ["OFFLINE_MODEL", "extractive_answer"]

OFFLINE_MODEL = "hivewire-offline-extractive"

_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "so",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "this",
        "to",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
    ]
)


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 1}


def extractive_answer(
    messages: list[ChatMessage], passages: list[Passage], *, max_sentences: int = 3
) -> Completion:
    """Answer the last user message from ``passages`` alone."""
    question = next((m.content for m in reversed(messages) if m.role == "user"), "")
    asked = _words(question)
    scored: list[tuple[float, int, int, str]] = []
    for p_index, passage in enumerate(passages):
        for s_index, sentence in enumerate(s.strip() for s in _SENTENCE.split(passage.text)):
            if len(sentence) < 3 or sentence.startswith("#"):
                continue
            overlap = len(asked & _words(sentence))
            if overlap:
                # Earlier (better-ranked) passages win ties.
                scored.append((overlap - 0.01 * p_index, p_index, s_index, sentence))
    best = sorted(scored, reverse=True)[:max_sentences]
    if not best:
        text = (
            "I'm running without a language model (offline mode) and found nothing in the "
            "knowledge base that answers this."
        )
        return Completion(text=text, model=OFFLINE_MODEL, usage=Usage(), offline=True)
    chosen = sorted(best, key=lambda item: (item[1], item[2]))
    cited: list[int] = []
    lines = []
    for _, p_index, _, sentence in chosen:
        if p_index not in cited:
            cited.append(p_index)
        lines.append(f"{sentence} [{cited.index(p_index) + 1}]")
    sources = [f"[{n + 1}] {passages[p].label}" for n, p in enumerate(cited)]
    text = (
        "From the knowledge base (offline mode: no language model is configured, so these are "
        "the most relevant sentences as written):\n\n"
        + "\n".join(lines)
        + "\n\nSources:\n"
        + "\n".join(sources)
    )
    return Completion(text=text, model=OFFLINE_MODEL, usage=Usage(), offline=True)
