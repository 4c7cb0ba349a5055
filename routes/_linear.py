"""The fast serving model: a logistic score over named cues and hashed n-grams, stored in one .npz.

Scoring is one sparse dot product, so a decision costs well under a millisecond. Standardisation
is folded into the saved weights at training time; the saved feature means remain only so the
explanation can say which cue pushed this prompt away from an average one. The file also keeps
the quantiles of scores the model gave to held-out training prompts, so a target share of strong
calls becomes a threshold at runtime without any data (RouteLLM's `calibrate_threshold`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._compiled import KERNELS
from ._features import DENSE_NAMES, Features, extract, scan
from ._messages import Conversation, conversation
from ._types import Score

FORMAT_VERSION = 2  # 2: word-problem cues added to the dense features; a `kind` field
KIND = "linear"
N_REASONS = 3
NEUTRAL = 0.5
UNJUDGEABLE = Score(NEUTRAL, judgeable=False, explain=lambda: ("no text to judge",))
_FIELDS = frozenset(
    {"bits", "dense_names", "dense_weights", "dense_means", "hashed_weights", "bias", "calibration"}
)


class ModelFileError(ValueError):
    """A model file is missing, unreadable, or was built for other features."""


@dataclass(frozen=True, slots=True, eq=False)
class LinearClassifier:
    """Logistic regression over `extract()` features; see the module docstring."""

    bits: int
    dense_weights: NDArray[np.float64]
    dense_means: NDArray[np.float64]
    hashed_weights: NDArray[np.float32]
    bias: float
    calibration: NDArray[np.float64]

    def score(self, messages: Sequence[Mapping[str, Any]]) -> Score:
        """Estimated need for the strong arm, in [0, 1], with the top contributing features."""
        conv = conversation(messages)
        if not conv.judgeable:
            return UNJUDGEABLE
        return Score(sigmoid(self.log_odds(conv)), True, lambda: top_reasons(self.contributions(*self.logit(conv)[1:])))

    def score_batch(self, chats: Sequence[Sequence[Mapping[str, Any]]]) -> NDArray[np.float64]:
        """`score(chat).value` for many chats."""
        return np.array([self.score(chat).value for chat in chats], dtype=np.float64)

    def log_odds(self, conv: Conversation) -> float:
        """`logit(conv)[0]`, bit for bit: by the compiled scorer when it is built (a decision needs
        only this number; the features and contributions are worked out again if an explanation is asked)."""
        if KERNELS is None:
            return self.logit(conv)[0]
        found = scan(conv)
        return KERNELS.hashed_logit(
            found.dense, self.dense_weights, found.words, found.lower, found.multiple_choice, self.bits,
            self.hashed_weights, self.bias,
        )

    def logit(self, conv: Conversation) -> tuple[float, Features, NDArray[np.float64]]:
        """The score's log-odds, the features, and each hashed entry's contribution."""
        feats = extract(conv, self.bits)
        dense_part = self.dense_weights * feats.dense
        hashed = self.hashed_weights[feats.indices].astype(np.float64) * feats.values
        return self.bias + float(dense_part.sum()) + float(hashed.sum()), feats, hashed

    def threshold_for_share(self, share: float) -> float:
        """Threshold that sends about `share` (0..1) of traffic like the training mix to the strong arm."""
        return share_threshold(self.calibration, share)

    def contributions(self, feats: Features, hashed: NDArray[np.float64]) -> list[tuple[str, float]]:
        """Pushes away from an average prompt, in logit units: each named cue, the most telling
        word, and the word-bigram and character-n-gram totals."""
        named = list(
            zip(DENSE_NAMES, (self.dense_weights * (feats.dense - self.dense_means)).tolist(), strict=True)
        )
        n_uni, n_bi = feats.n_unigrams, feats.n_bigrams
        hashed = hashed[: feats.n_shared] + hashed[feats.n_shared :]  # a feature and its format copy
        if n_uni:
            unigram = hashed[:n_uni]
            top = int(np.argmax(np.abs(unigram)))
            named.append((f"word:{feats.words[top]}", float(unigram[top])))
        named.append(("word_bigrams", float(hashed[n_uni : n_uni + n_bi].sum())))
        named.append(("char_ngrams", float(hashed[n_uni + n_bi :].sum())))
        return named

    def save(self, path: str | Path) -> None:
        """Write the model as a compressed .npz (no pickles, so loading runs no code)."""
        np.savez_compressed(
            Path(path), allow_pickle=False, format_version=np.int64(FORMAT_VERSION), kind=np.asarray(KIND),
            **linear_fields(self),
        )


def sigmoid(logit: float) -> float:
    return 0.5 * (1.0 + math.tanh(0.5 * logit))


def top_reasons(named: list[tuple[str, float]]) -> tuple[str, ...]:
    """The largest pushes, e.g. ('length_words+0.21', 'word:prove+0.18', ...)."""
    named = sorted(named, key=lambda item: -abs(item[1]))
    return tuple(f"{name}{value:+.2f}" for name, value in named[:N_REASONS])


def share_threshold(calibration: NDArray[np.float64], share: float) -> float:
    """The score above which `share` (0..1) of held-out training scores lie."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be within [0, 1], got {share}")
    if share == 0.0:
        return math.nextafter(1.0, 2.0)  # above every possible score
    if share == 1.0:
        return 0.0
    levels = np.linspace(0.0, 1.0, calibration.size)
    return float(np.interp(1.0 - share, levels, calibration))


def read_fields(path: str | Path) -> dict[str, NDArray[Any]]:
    """Every array of a model file, after checking the format version."""
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            fields = {name: data[name] for name in data.files}
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: cannot read model file ({exc})") from exc
    if int(fields.get("format_version", -1)) != FORMAT_VERSION:
        raise ModelFileError(f"{path}: unsupported model format, expected version {FORMAT_VERSION}")
    return fields


def linear_from_fields(fields: Mapping[str, NDArray[Any]], path: str | Path, prefix: str = "") -> LinearClassifier:
    """Rebuild a LinearClassifier from saved arrays (`prefix` lets another model embed one)."""
    missing = sorted(f"{prefix}{name}" for name in _FIELDS if f"{prefix}{name}" not in fields)
    if missing:
        raise ModelFileError(f"{path}: model file lacks {missing}")
    if tuple(str(name) for name in fields[f"{prefix}dense_names"]) != DENSE_NAMES:
        raise ModelFileError(f"{path}: model was trained on different features; retrain it")
    bits = int(fields[f"{prefix}bits"])
    if fields[f"{prefix}hashed_weights"].size != 1 << bits:
        raise ModelFileError(f"{path}: hashed weights do not match bits={bits}")
    return LinearClassifier(
        bits=bits,
        dense_weights=fields[f"{prefix}dense_weights"].astype(np.float64),
        dense_means=fields[f"{prefix}dense_means"].astype(np.float64),
        hashed_weights=fields[f"{prefix}hashed_weights"].astype(np.float32),
        bias=float(fields[f"{prefix}bias"]),
        calibration=fields[f"{prefix}calibration"].astype(np.float64),
    )


def linear_fields(model: LinearClassifier, prefix: str = "") -> dict[str, ArrayLike]:
    """The arrays `save` writes, keyed with `prefix`."""
    return {
        f"{prefix}bits": np.int64(model.bits),
        f"{prefix}dense_names": np.asarray(DENSE_NAMES),
        f"{prefix}dense_weights": model.dense_weights,
        f"{prefix}dense_means": model.dense_means,
        f"{prefix}hashed_weights": model.hashed_weights,
        f"{prefix}bias": np.float64(model.bias),
        f"{prefix}calibration": model.calibration,
    }
