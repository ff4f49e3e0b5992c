"""Offline embeddings: the pinned int8 MiniLM reproduces the model's published similarities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knowledge.embeddings import DIMENSIONS, MiniLMEmbedder, default_vocab_path
from knowledge.errors import EmbeddingModelError


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def test_it_reproduces_the_models_published_similarities(embedder: MiniLMEmbedder) -> None:
    # The example on all-MiniLM-L6-v2's model card, with the similarities printed there.
    vectors = embedder.embed(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    )
    similarity = vectors @ vectors.T
    published = np.array([[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]])
    assert np.abs(similarity - published).max() < 0.005


def test_paraphrases_are_close_and_unrelated_texts_are_not(embedder: MiniLMEmbedder) -> None:
    question, paraphrase, unrelated = embedder.embed(
        [
            "How do I reset my password?",
            "I forgot my password and need a new one.",
            "Invoices are emailed on the first day of each billing period.",
        ]
    )
    assert question @ paraphrase > 0.7
    assert question @ unrelated < 0.2


def test_batching_by_length_changes_no_vector(embedder: MiniLMEmbedder) -> None:
    texts = [
        "short",
        "a somewhat longer sentence about sync errors",
        "word " * 300,
        "",
        "émoji ✨ and CJK 你好",
    ]
    together = embedder.embed(texts)
    alone = np.vstack([embedder.embed([text]) for text in texts])
    assert together.shape == (5, DIMENSIONS)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert (together * alone).sum(axis=1).min() > 0.99999
    assert embedder.embed([]).shape == (0, DIMENSIONS)


def test_a_file_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    tampered = tmp_path / "vocab.txt"
    tampered.write_text(default_vocab_path().read_text().replace("[UNK]", "[UNKNOWN]"))
    with pytest.raises(EmbeddingModelError, match="is not the pinned"):
        MiniLMEmbedder(vocab_path=tampered)
    with pytest.raises(EmbeddingModelError, match="No such file"):
        MiniLMEmbedder(model_path=tmp_path / "missing.onnx")
