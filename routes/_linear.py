"""The serving model: a logistic score over named cues and hashed n-grams, stored in one .npz.

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
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._features import DENSE_NAMES, Features, extract
from ._messages import conversation
from ._types import Score

FORMAT_VERSION = 1
DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "default.npz"
N_REASONS = 3
NEUTRAL = 0.5
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
            return Score(NEUTRAL, ("no text to judge",), judgeable=False)
        feats = extract(conv, self.bits)
        dense_part = self.dense_weights * feats.dense
        hashed = self.hashed_weights[feats.indices].astype(np.float64) * feats.values
        logit = self.bias + float(dense_part.sum()) + float(hashed.sum())
        value = 0.5 * (1.0 + math.tanh(0.5 * logit))
        return Score(value, self._reasons(feats, hashed), judgeable=True)

    def threshold_for_share(self, share: float) -> float:
        """Threshold that sends about `share` (0..1) of traffic like the training mix to the strong arm."""
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be within [0, 1], got {share}")
        if share == 0.0:
            return math.nextafter(1.0, 2.0)  # above every possible score
        if share == 1.0:
            return 0.0
        levels = np.linspace(0.0, 1.0, self.calibration.size)
        return float(np.interp(1.0 - share, levels, self.calibration))

    def _reasons(self, feats: Features, hashed: NDArray[np.float64]) -> tuple[str, ...]:
        """The largest pushes away from an average prompt, in logit units, e.g. 'length_words+0.21'."""
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
        named.sort(key=lambda item: -abs(item[1]))
        return tuple(f"{name}{value:+.2f}" for name, value in named[:N_REASONS])

    def save(self, path: str | Path) -> None:
        """Write the model as a compressed .npz (no pickles, so loading runs no code)."""
        np.savez_compressed(
            Path(path),
            format_version=np.int64(FORMAT_VERSION),
            bits=np.int64(self.bits),
            dense_names=np.asarray(DENSE_NAMES),
            dense_weights=self.dense_weights,
            dense_means=self.dense_means,
            hashed_weights=self.hashed_weights,
            bias=np.float64(self.bias),
            calibration=self.calibration,
        )


def read_model(path: str | Path) -> LinearClassifier:
    """Load a saved model, refusing files whose features do not match this code."""
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            fields = {name: data[name] for name in data.files}
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: cannot read model file ({exc})") from exc
    if int(fields.get("format_version", -1)) != FORMAT_VERSION:
        raise ModelFileError(f"{path}: unsupported model format, expected version {FORMAT_VERSION}")
    missing = sorted(_FIELDS - fields.keys())
    if missing:
        raise ModelFileError(f"{path}: model file lacks {missing}")
    if tuple(str(name) for name in fields["dense_names"]) != DENSE_NAMES:
        raise ModelFileError(f"{path}: model was trained on different features; retrain it")
    bits = int(fields["bits"])
    if fields["hashed_weights"].size != 1 << bits:
        raise ModelFileError(f"{path}: hashed weights do not match bits={bits}")
    return LinearClassifier(
        bits=bits,
        dense_weights=fields["dense_weights"].astype(np.float64),
        dense_means=fields["dense_means"].astype(np.float64),
        hashed_weights=fields["hashed_weights"].astype(np.float32),
        bias=float(fields["bias"]),
        calibration=fields["calibration"].astype(np.float64),
    )


def load_classifier(path: str | Path | None = None) -> LinearClassifier:
    """The model at `path` (None = the shipped default), loaded once per resolved path."""
    return _load_cached(str(Path(path).resolve()) if path is not None else str(DEFAULT_MODEL))


@lru_cache(maxsize=8)
def _load_cached(resolved: str) -> LinearClassifier:
    return read_model(resolved)
