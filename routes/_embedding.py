"""The default serving model: the fast linear score stacked with a topic prior from MiniLM embeddings.

Why a topic prior. How much GPT-4 adds over Mixtral depends strongly on the subject (college
mathematics, professional law and formal logic gain far more than marketing or sociology), and
subject is a smooth, non-additive property of the whole prompt that hashed n-grams capture only
word by word. The prior is a kernel smoother over semantic space: training prompts are clustered
(spherical k-means on MiniLM embeddings), each cluster keeps its mean soft label shrunk towards
the global mean, and a new prompt reads the similarity-weighted mean of its `top` nearest
clusters. Centroids, not training prompts, are stored, so the model holds no training text.

Why only the first words. The retrieval layer's int8 MiniLM encoder costs a fixed ~5 ms per call
plus ~0.3 ms per word piece on the 2-core target, so embedding whole prompts (up to 256 pieces)
takes 20-80 ms. The topic sits in the opening words; the encoder reads the first
`TOPIC_TOKENS` word pieces (including [CLS] and [SEP]), which keeps a decision's p99 under 10 ms.
Prototype cross-validation on the train split (5 folds x 3 seeds, MMLU / GSM8K APGR of the
stack): 12 pieces 0.673 / 0.662, 16 pieces 0.671 / 0.659, 20 pieces 0.672 / 0.658 (over 10 ms
p99), whole prompt 0.683 / 0.656 (20-80 ms); the linear model alone 0.665 / 0.664.

What it buys, honestly. `hybrid-gateway router cv` (seeds 0 and 1) gives MMLU APGR 0.669 / 0.667
against the linear model's 0.664 / 0.666, GSM8K equal (0.669 / 0.651 both), and trained on MMLU
only, GSM8K 0.599 against 0.584: a small, consistent gain, mostly on subject-driven traffic,
for ~6 ms more per decision. The `fast` model (`routes/_static.py`) stacks a transformer-free
version of this prior, built from MiniLM's input word-piece embeddings, inside 1 ms.

Stacking. The final log-odds are `w_linear * linear_logit + w_topic * topic_logit + bias`, the
three numbers fitted by logistic regression on out-of-fold logits of both parts (see
`routes/training/train.py`), so the blend is learned, not hand-set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from retrieval.embeddings.minilm import prefix_chars

from ._linear import (
    FORMAT_VERSION,
    UNJUDGEABLE,
    LinearClassifier,
    ModelFileError,
    linear_fields,
    linear_from_fields,
    share_threshold,
    sigmoid,
    top_reasons,
)
from ._messages import Conversation, conversation
from ._types import Score

KIND = "embedding"
TOPIC_TOKENS = 12
TOPIC_WORDS = 48  # a cheap cap before tokenising: 48 words always exceed 12 word pieces
TOPIC_CHARS = prefix_chars(TOPIC_WORDS)  # and before splitting: the characters 48 pieces can come from
P_CLIP = 1e-6
_FIELDS = frozenset({"centroids", "centroid_values", "top", "temperature", "weights", "bias", "topic_mean"})


class Embedder(Protocol):
    """Anything with MiniLMEncoder's `embed`: texts -> L2-normalised float32 rows."""

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


def topic_text(text: str) -> str:
    """The part of a judged turn the topic prior reads (the encoder truncates it further).

    Cut by characters first: splitting or tokenising a multi-megabyte prompt whole costs memory
    and CPU in proportion to its length, and at most TOPIC_WORDS pieces of its start are read.
    """
    return " ".join(text[:TOPIC_CHARS].split()[:TOPIC_WORDS])


@lru_cache(maxsize=1)
def topic_encoder() -> Embedder:
    """The retrieval layer's offline MiniLM, reading only the first TOPIC_TOKENS word pieces.

    It runs on the process's one MiniLM session (``retrieval.embeddings.minilm.load_model``), the
    one retrieval embeds with too: a second session cost each worker ~100 MB. onnxruntime sessions
    are thread-safe.
    """
    from retrieval import MiniLMEncoder

    class TopicEncoder(MiniLMEncoder):
        max_tokens = TOPIC_TOKENS

    return TopicEncoder()


def topic_logits(
    embeddings: NDArray[np.float32],
    centroids: NDArray[np.float32],
    values: NDArray[np.float64],
    top: int,
    temperature: float,
) -> NDArray[np.float64]:
    """Log-odds of the similarity-weighted mean label of each row's `top` nearest centroids."""
    sims = (embeddings @ centroids.T).astype(np.float64)
    nearest = np.argpartition(-sims, top - 1, axis=1)[:, :top]
    near_sims = np.take_along_axis(sims, nearest, axis=1)
    weights = np.exp(temperature * (near_sims - near_sims.max(axis=1, keepdims=True)))
    mean_label = (values[nearest] * weights).sum(axis=1) / weights.sum(axis=1)
    p: NDArray[np.float64] = np.clip(mean_label, P_CLIP, 1.0 - P_CLIP)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True, slots=True, eq=False)
class EmbeddingClassifier:
    """A LinearClassifier plus a MiniLM topic prior, blended in log-odds; see the module docstring."""

    linear: LinearClassifier
    centroids: NDArray[np.float32]
    centroid_values: NDArray[np.float64]
    top: int
    temperature: float
    weights: NDArray[np.float64]  # (linear, topic)
    bias: float
    topic_mean: float  # mean out-of-fold topic logit: the reference point of the "topic" reason
    calibration: NDArray[np.float64]
    embedder: Embedder | None = field(default=None, repr=False)

    def score(self, messages: Sequence[Mapping[str, Any]]) -> Score:
        """Estimated need for the strong arm, in [0, 1], with the top contributing features."""
        conv = conversation(messages)
        if not conv.judgeable:
            return UNJUDGEABLE
        linear_logit, feats, hashed = self.linear.logit(conv)
        topic = float(self.topic_logits(self.embed([conv]))[0])

        def explain() -> tuple[str, ...]:
            w_linear, w_topic = float(self.weights[0]), float(self.weights[1])
            named = [(name, w_linear * value) for name, value in self.linear.contributions(feats, hashed)]
            named.append(("topic", w_topic * (topic - self.topic_mean)))
            return top_reasons(named)

        return Score(self.blend(linear_logit, topic), True, explain)

    def blend(self, linear_logit: float, topic: float) -> float:
        """One score from the linear log-odds and the topic prior's (`combine`, for one row)."""
        return sigmoid(float(self.weights[0]) * linear_logit + float(self.weights[1]) * topic + self.bias)

    def score_batch(self, chats: Sequence[Sequence[Mapping[str, Any]]]) -> NDArray[np.float64]:
        """`score(chat).value` for many chats, with one batched MiniLM call (same numbers, faster)."""
        convs = [conversation(chat) for chat in chats]
        values = np.full(len(convs), UNJUDGEABLE.value)
        judged = [i for i, conv in enumerate(convs) if conv.judgeable]
        if judged:
            linear = np.array([self.linear.log_odds(convs[i]) for i in judged])
            topic = self.topic_logits(self.embed([convs[i] for i in judged]))
            values[judged] = self.combine(linear, topic)
        return values

    def embed(self, convs: Sequence[Conversation]) -> NDArray[np.float32]:
        encoder = self.embedder if self.embedder is not None else topic_encoder()
        return encoder.embed([topic_text(c.text) for c in convs])

    def topic_logits(self, embeddings: NDArray[np.float32]) -> NDArray[np.float64]:
        return topic_logits(embeddings, self.centroids, self.centroid_values, self.top, self.temperature)

    def combine(self, linear_logits: NDArray[np.float64], topic: NDArray[np.float64]) -> NDArray[np.float64]:
        """Scores for many rows at once, exactly as `score` blends one (training and CV use this)."""
        logit: NDArray[np.float64] = self.weights[0] * linear_logits + self.weights[1] * topic + self.bias
        return 0.5 * (1.0 + np.tanh(0.5 * logit))

    def threshold_for_share(self, share: float) -> float:
        """Threshold that sends about `share` (0..1) of traffic like the training mix to the strong arm."""
        return share_threshold(self.calibration, share)

    def save(self, path: str | Path) -> None:
        """Write the model (its linear part included) as one compressed .npz, without pickles."""
        np.savez_compressed(Path(path), allow_pickle=False, **embedding_fields(self))


def embedding_fields(model: EmbeddingClassifier) -> dict[str, ArrayLike]:
    """The arrays `save` writes (the static model adds its table to them, `routes/_static.py`)."""
    return {
        "format_version": np.int64(FORMAT_VERSION),
        "kind": np.asarray(KIND),
        "centroids": model.centroids.astype(np.float32),
        "centroid_values": model.centroid_values,
        "top": np.int64(model.top),
        "temperature": np.float64(model.temperature),
        "weights": model.weights,
        "bias": np.float64(model.bias),
        "topic_mean": np.float64(model.topic_mean),
        "calibration": model.calibration,
        **linear_fields(model.linear, prefix="linear_"),
    }


def embedding_from_fields(
    fields: Mapping[str, NDArray[Any]], path: str | Path, embedder: Embedder | None = None
) -> EmbeddingClassifier:
    missing = sorted((_FIELDS | {"calibration"}) - fields.keys())
    if missing:
        raise ModelFileError(f"{path}: model file lacks {missing}")
    centroids = fields["centroids"].astype(np.float32)
    values = fields["centroid_values"].astype(np.float64)
    top = int(fields["top"])
    if centroids.ndim != 2 or values.shape != (centroids.shape[0],) or not 1 <= top <= values.size:
        raise ModelFileError(f"{path}: topic centroids and values do not match")
    return EmbeddingClassifier(
        linear=linear_from_fields(fields, path, prefix="linear_"),
        centroids=centroids,
        centroid_values=values,
        top=top,
        temperature=float(fields["temperature"]),
        weights=fields["weights"].astype(np.float64),
        bias=float(fields["bias"]),
        topic_mean=float(fields["topic_mean"]),
        calibration=fields["calibration"].astype(np.float64),
        embedder=embedder,
    )
