"""Classification by example: the label whose examples are closest in meaning to a text.

What the support desk uses to read intent and sentiment without a language
model. A label scores the mean of its two examples most similar to the text
(one stray example does not decide). Example embeddings are computed once per
label set and kept.
"""

from __future__ import annotations

import threading

import numpy as np

from knowledge.embedders import Embedder, Vectors

__all__ = ["ExampleClassifier"]


class ExampleClassifier:
    """Classifies texts against labelled examples with an embedder."""

    def __init__(self, embedder: Embedder, *, max_label_sets: int = 64) -> None:
        self._embedder = embedder
        self._max = max_label_sets
        self._examples: dict[tuple[tuple[str, tuple[str, ...]], ...], list[tuple[str, Vectors]]] = {}
        self._lock = threading.Lock()

    def classify(self, text: str, labels: dict[str, list[str]]) -> tuple[str, dict[str, float]]:
        """The best label for ``text`` and every label's score (blocking: call it in a thread)."""
        examples = self._embedded(labels)
        query = _unit(self._embedder.embed([text]))[0]
        scores = {}
        for label, vectors in examples:
            similar = np.sort(vectors @ query)[::-1][:2]
            scores[label] = round(float(similar.mean()), 4)
        return max(scores, key=lambda label: scores[label]), scores

    def _embedded(self, labels: dict[str, list[str]]) -> list[tuple[str, Vectors]]:
        key = tuple((label, tuple(examples)) for label, examples in labels.items())
        with self._lock:
            found = self._examples.get(key)
        if found is not None:
            return found
        texts = [example for _, examples in key for example in examples]
        vectors = _unit(self._embedder.embed(texts))
        embedded, at = [], 0
        for label, examples in key:
            embedded.append((label, vectors[at : at + len(examples)]))
            at += len(examples)
        with self._lock:
            if len(self._examples) >= self._max:
                self._examples.clear()
            self._examples[key] = embedded
        return embedded


def _unit(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    result: Vectors = vectors / np.maximum(norms, 1e-12)
    return result
