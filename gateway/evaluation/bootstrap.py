"""Paired bootstrap intervals for the difference between two arms on the same examples.

Both arms answered the same examples, so each resample draws example indices
once and takes both arms' values at them: the interval then reflects the
spread of the *difference*, not of two independent samples, and is much
narrower when the arms agree on which examples are hard. Percentile interval,
seeded, so a report is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

DEFAULT_SAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    observed: float
    """``statistic(b) - statistic(a)`` on the examples as they are."""
    low: float
    high: float
    confidence: float
    pairs: int

    def as_json(self) -> dict[str, float | int]:
        return {"observed": self.observed, "low": self.low, "high": self.high,
                "confidence": self.confidence, "pairs": self.pairs}


def paired_difference(a: ArrayLike, b: ArrayLike, *, percentile: float | None = None,
                      samples: int = DEFAULT_SAMPLES, seed: int = 0, confidence: float = 0.95) -> Interval:
    """Interval of ``stat(b) - stat(a)``; ``stat`` is the mean, or the given percentile (0-100)."""
    first, second = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if first.shape != second.shape or first.ndim != 1 or first.size == 0:
        raise ValueError("need two equally long, non-empty sequences of paired values")

    def stat(values: np.ndarray) -> np.ndarray:
        if percentile is None:
            return np.asarray(np.mean(values, axis=-1))
        return np.asarray(np.percentile(values, percentile, axis=-1))

    rng = np.random.default_rng(seed)
    indices = rng.integers(0, first.size, size=(samples, first.size))
    differences = stat(second[indices]) - stat(first[indices])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(differences, [tail, 100 - tail])
    return Interval(float(stat(second) - stat(first)), float(low), float(high), confidence, int(first.size))
