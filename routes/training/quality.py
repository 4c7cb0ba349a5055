"""Routing quality, as RouteLLM measures it: PGR curve, APGR, CPT(x%), plus ROC AUC.

The definitions follow `routellm/evals/evaluate.py` and `benchmarks.py` so our figures can sit
beside the published ones:

* thresholds are the 11 decile edges of the router's scores (linear-interpolated quantiles
  0, 0.1, ..., 1); at every edge but the last a prompt goes to the strong arm when
  score >= edge, at the last edge when score > edge (so the curve runs from 100% to 0%);
* the routed accuracy at each edge is plotted against the share of strong calls, and APGR is the
  trapezoid area under that curve with the weak accuracy subtracted, divided by the area
  between the strong and the weak accuracy;
* CPT(x) is the strong-call share where PGR first reaches x on the piecewise-linear curve.
  RouteLLM reads it off with `np.interp`, which agrees whenever the curve is monotonic; taking
  the first crossing keeps the figure defined when it is not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

N_BINS = 10


@dataclass(frozen=True, slots=True)
class RoutingCurve:
    """Strong-call share (0..1, ascending) and routed mean quality at each decile threshold."""

    strong_share: NDArray[np.float64]
    quality: NDArray[np.float64]
    weak_quality: float
    strong_quality: float

    @property
    def pgr(self) -> NDArray[np.float64]:
        """Performance gap recovered at each point: 0 = weak arm alone, 1 = strong arm alone."""
        return (self.quality - self.weak_quality) / (self.strong_quality - self.weak_quality)


def routing_curve(
    scores: ArrayLike, weak: ArrayLike, strong: ArrayLike, n_bins: int = N_BINS
) -> RoutingCurve:
    """Route at each decile edge of `scores`; `weak`/`strong` are per-prompt qualities in [0, 1]."""
    s = np.asarray(scores, dtype=np.float64)
    w = np.asarray(weak, dtype=np.float64)
    g = np.asarray(strong, dtype=np.float64)
    if not (s.shape == w.shape == g.shape) or s.ndim != 1 or s.size == 0:
        raise ValueError("scores, weak and strong must be equal-length non-empty 1-D arrays")
    if g.mean() == w.mean():
        raise ValueError("strong and weak arms have the same mean quality; PGR is undefined")
    edges = np.quantile(s, np.linspace(0.0, 1.0, n_bins + 1))
    shares, quality = [], []
    for i, edge in enumerate(edges):
        to_strong = s > edge if i == len(edges) - 1 else s >= edge
        shares.append(to_strong.mean())
        quality.append(np.where(to_strong, g, w).mean())
    order = np.argsort(shares, kind="stable")
    return RoutingCurve(
        strong_share=np.asarray(shares)[order],
        quality=np.asarray(quality)[order],
        weak_quality=float(w.mean()),
        strong_quality=float(g.mean()),
    )


def apgr(curve: RoutingCurve) -> float:
    """Area under PGR over the strong-call share, normalised by the share range (RouteLLM's APGR)."""
    x = curve.strong_share
    width = float(x[-1] - x[0])
    if width <= 0:
        raise ValueError("all thresholds give the same strong share; APGR is undefined")
    area = float(np.trapezoid(curve.quality, x))
    weak_area = curve.weak_quality * width
    strong_area = curve.strong_quality * width
    return (area - weak_area) / (strong_area - weak_area)


def cpt(curve: RoutingCurve, target: float) -> float:
    """Smallest strong-call share (0..1) at which the PGR curve reaches `target` (e.g. 0.5)."""
    x, y = curve.strong_share, curve.pgr
    if y[0] >= target:
        return float(x[0])
    for i in range(1, len(x)):
        if y[i] >= target:
            x0, x1, y0, y1 = x[i - 1], x[i], y[i - 1], y[i]
            return float(x0 + (target - y0) * (x1 - x0) / (y1 - y0))
    return float(x[-1])


def roc_auc(scores: ArrayLike, positive: ArrayLike) -> float:
    """Probability a random positive outranks a random negative (ties count half)."""
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs at least one positive and one negative")
    ranks = _midranks(s)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _midranks(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """1-based ranks with ties given their average rank."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    ranks = np.empty(values.size, dtype=np.float64)
    start = 0
    for end in range(1, values.size + 1):
        if end == values.size or sorted_values[end] != sorted_values[start]:
            ranks[order[start:end]] = (start + end + 1) / 2.0
            start = end
    return ranks
