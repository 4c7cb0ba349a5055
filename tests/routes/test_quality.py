"""RouteLLM metrics checked against a brute-force recomputation on a hand-made set."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from routes.training.quality import apgr, cpt, roc_auc, routing_curve

# 10 prompts: score, weak correct, strong correct
SCORES = [0.9, 0.8, 0.75, 0.6, 0.55, 0.5, 0.4, 0.3, 0.2, 0.1]
WEAK = [0, 0, 1, 0, 1, 1, 0, 1, 1, 1]
STRONG = [1, 1, 1, 0, 1, 1, 1, 1, 0, 1]


def _quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile written out by hand (numpy's default method)."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _brute_curve() -> list[tuple[float, float]]:
    points = []
    for i in range(11):
        edge = _quantile(SCORES, i / 10)
        chosen = [(s > edge) if i == 10 else (s >= edge) for s in SCORES]
        acc = sum(g if c else w for c, w, g in zip(chosen, WEAK, STRONG, strict=True)) / len(SCORES)
        points.append((sum(chosen) / len(SCORES), acc))
    return sorted(points)


def _brute_apgr() -> float:
    points = _brute_curve()
    area = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in itertools.pairwise(points))
    weak, strong = sum(WEAK) / len(WEAK), sum(STRONG) / len(STRONG)
    return (area - weak) / (strong - weak)


def test_curve_matches_brute_force() -> None:
    curve = routing_curve(SCORES, WEAK, STRONG)
    expected = _brute_curve()
    assert curve.strong_share.tolist() == pytest.approx([x for x, _ in expected])
    assert curve.quality.tolist() == pytest.approx([y for _, y in expected])
    assert curve.strong_share[0] == 0.0 and curve.strong_share[-1] == 1.0


def test_apgr_matches_brute_force() -> None:
    assert apgr(routing_curve(SCORES, WEAK, STRONG)) == pytest.approx(_brute_apgr())


def test_apgr_of_reversed_scores_is_lower() -> None:
    good = apgr(routing_curve(SCORES, WEAK, STRONG))
    bad = apgr(routing_curve([-s for s in SCORES], WEAK, STRONG))
    assert good > 0.5 > bad


@pytest.mark.parametrize("target", [0.2, 0.5, 0.8])
def test_cpt_is_first_crossing_on_a_fine_grid(target: float) -> None:
    points = _brute_curve()
    weak, strong = sum(WEAK) / len(WEAK), sum(STRONG) / len(STRONG)
    grid = np.linspace(0, 1, 200_001)
    pgr = (np.interp(grid, [x for x, _ in points], [y for _, y in points]) - weak) / (strong - weak)
    expected = grid[np.argmax(pgr >= target - 1e-12)]
    assert cpt(routing_curve(SCORES, WEAK, STRONG), target) == pytest.approx(expected, abs=1e-5)


def test_roc_auc_matches_pair_counting() -> None:
    scores = [0.9, 0.8, 0.8, 0.4, 0.3, 0.3, 0.1]
    positive = [1, 0, 1, 1, 0, 1, 0]
    wins = 0.0
    pairs = 0
    for (sp, p), (sn, n) in itertools.product(zip(scores, positive, strict=True), repeat=2):
        if p and not n:
            pairs += 1
            wins += 1.0 if sp > sn else 0.5 if sp == sn else 0.0
    assert roc_auc(scores, positive) == pytest.approx(wins / pairs)


def test_degenerate_inputs_are_rejected() -> None:
    with pytest.raises(ValueError):
        routing_curve([0.1, 0.2], [1, 0], [1, 0])  # equal arms: PGR undefined
    with pytest.raises(ValueError):
        roc_auc([0.1, 0.2], [1, 1])
