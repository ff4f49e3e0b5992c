"""Offline mode: without a model endpoint, answer with the passages' own sentences, and say so.

It is extractive, not generative: it picks the sentences of the retrieved
passages that share the most words with the question, keeps them in their
original order, and names where each came from. It never invents text, and
when nothing relevant was retrieved it says that instead of guessing.
"""

from __future__ import annotations

import re

from agents.llm.messages import ChatMessage, Completion, Passage, Usage

__all__ = ["OFFLINE_MODEL", "extract", "extractive_answer"]

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


def _stem(word: str) -> str:
    """A crude stem, so "charged", "charges" and "charge" meet."""
    for suffix in ("ing", "ed", "es", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _words(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 1}


_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


def _units(text: str) -> list[str]:
    """A passage's answerable pieces, in order: a list is one piece (a procedure stays whole),
    a paragraph gives one piece per sentence; headings and breadcrumbs are dropped."""
    units: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        if all(_LIST_ITEM.match(line) for line in lines):
            steps = "\n".join(lines[:8])
            if units and units[-1].endswith(":"):
                # "If the code is rejected:" introduces the list: they answer together.
                units[-1] = units[-1] + "\n" + steps
            else:
                units.append(steps)
            continue
        paragraph = " ".join(lines)
        if paragraph.startswith("#") or (" > " in paragraph and not paragraph.endswith((".", "!", "?", ":"))):
            continue
        if len(paragraph.split()) <= 8 and not paragraph.endswith((".", "!", "?", ":")):
            continue  # a heading
        units.extend(s.strip() for s in _SENTENCE.split(paragraph) if len(s.strip()) > 2)
    return units


def extract(question: str, passages: list[Passage], *, max_units: int = 3) -> list[tuple[int, str]]:
    """The pieces of ``passages`` that best answer ``question``: ``(passage index, text)`` in reading order.

    The best-ranked passage leads (retrieval ranked it by meaning): its piece
    sharing the most words with the question, or its first piece when none
    does. Up to ``max_units - 1`` more pieces follow, from any passage, by the
    words they share with the question. Empty when the passages hold nothing.
    """
    asked = _words(question)
    candidates: list[tuple[int, int, int, str]] = []  # (overlap, passage, position, text)
    for p_index, passage in enumerate(passages):
        for u_index, unit in enumerate(_units(passage.text)):
            candidates.append((len(asked & _words(unit)), p_index, u_index, unit))
    if not candidates:
        return []
    top = [c for c in candidates if c[1] == candidates[0][1]]
    lead = max(top, key=lambda c: (c[0], -c[2]))
    rest = sorted((c for c in candidates if c is not lead and c[0] > 0), key=lambda c: (-c[0], c[1], c[2]))[
        : max_units - 1
    ]
    chosen = sorted([lead, *rest], key=lambda c: (c[1] != lead[1], c[1], c[2]))
    return [(p_index, unit) for _, p_index, _, unit in chosen]


def extractive_answer(
    messages: list[ChatMessage], passages: list[Passage], *, max_units: int = 3
) -> Completion:
    """Answer the last user message from ``passages`` alone (the pieces :func:`extract` picks), cited."""
    question = next((m.content for m in reversed(messages) if m.role == "user"), "")
    chosen = extract(question, passages, max_units=max_units)
    if not chosen:
        text = (
            "I'm running without a language model (offline mode) and found nothing in the "
            "knowledge base that answers this."
        )
        return Completion(text=text, model=OFFLINE_MODEL, usage=Usage(), offline=True)
    # [n] is the n-th passage as given, the numbering a model is asked to cite by, so a
    # client can map a citation to its source the same way for both kinds of answer.
    lines = [f"{unit} [{p_index + 1}]" for p_index, unit in chosen]
    sources = [f"[{p + 1}] {passages[p].label}" for p in sorted({p for p, _ in chosen})]
    text = (
        "From the knowledge base (offline mode: no language model is configured, so these are "
        "the most relevant passages as written):\n\n"
        + "\n\n".join(lines)
        + "\n\nSources:\n"
        + "\n".join(sources)
    )
    return Completion(text=text, model=OFFLINE_MODEL, usage=Usage(), offline=True)
