"""The live score sketch behind strong_share: the cut, ties, warm start, windows and merging."""

from __future__ import annotations

import random

import numpy as np
import pytest

from routes import CalibrationWindow, Cut, ScoreSketch, Slice, decide, load_classifier
from routes._calibration import BINS, SLICES, bin_of, cut_of
from tests.support.clock import FakeClock
from tests.support.support_traffic import clustered_scores

SHARE = 0.3
TRAINING = np.linspace(0.2, 0.9, 1001)  # a model whose training scores spread evenly over [0.2, 0.9]


def realised(sketch: ScoreSketch, scores: list[float], share: float = SHARE, seed: int = 0) -> float:
    """Decide each score against the sketch's current cut, record it, and return the prompted share."""
    draw = random.Random(seed).random
    prompted = 0
    for score in scores:
        strong = sketch.cut(share).prompted(score, draw)
        sketch.record(score, strong)
        prompted += strong
    return prompted / len(scores)


def test_the_cut_sends_the_share_of_a_histogram_and_splits_its_own_bin() -> None:
    histogram = np.zeros(BINS)
    histogram[[100, 2000, 3000]] = [50.0, 30.0, 20.0]
    cut = cut_of(histogram, 0.3)
    # 20 above bin 2000, and 10 of its 30: a third of that bin goes to the prompted arm
    assert (cut.bin, cut.fraction) == (2000, pytest.approx(1 / 3))
    assert cut.threshold == pytest.approx((2001 - 1 / 3) / BINS)
    assert (cut_of(histogram, 0.2).bin, cut_of(histogram, 0.2).fraction) == (2000, 0.0)  # all of bin 3000
    assert cut_of(histogram, 1.0).prompted(0.0, lambda: 0.99)
    assert not cut_of(histogram, 0.0).prompted(1.0, lambda: 0.0)
    with pytest.raises(ValueError):
        cut_of(histogram, 1.5)


def test_ties_still_meet_the_share() -> None:
    """Half the traffic scores exactly the same: no threshold can split it, the cut's draw does."""
    sketch = ScoreSketch(TRAINING, CalibrationWindow(), clock=FakeClock())
    scores = [0.5 if i % 2 else s for i, s in enumerate(clustered_scores(6000, seed=1))]
    realised(sketch, scores[:1000])
    assert realised(sketch, scores[1000:], seed=2) == pytest.approx(SHARE, abs=0.02)


@pytest.mark.parametrize("share", [0.05, 0.3, 0.7])
def test_tightly_clustered_traffic_converges_on_the_share(share: float) -> None:
    sketch = ScoreSketch(TRAINING, CalibrationWindow(), clock=FakeClock())
    scores = clustered_scores(6000, seed=3)
    fixed = np.mean(np.array(scores) >= np.quantile(TRAINING, 1 - share))
    assert fixed in (0.0, 1.0)  # the training quantiles alone send all of this traffic or none of it
    realised(sketch, scores[:500], share)
    assert realised(sketch, scores[500:], share, seed=4) == pytest.approx(share, abs=0.02)


def test_warm_start_is_the_training_quantile_and_fades_with_real_decisions() -> None:
    window = CalibrationWindow(prior_weight=50)
    sketch = ScoreSketch(TRAINING, window, clock=FakeClock())
    assert sketch.cut(SHARE).threshold == pytest.approx(np.quantile(TRAINING, 1 - SHARE), abs=2 / BINS)
    assert sketch.stats().prior_left == 50
    scores = clustered_scores(200, seed=5)
    for score in scores[:25]:
        sketch.record(score, False)
    half = sketch.cut(SHARE).threshold
    assert sketch.stats().prior_left == 25
    for score in scores[25:]:
        sketch.record(score, False)
    # the prior is spent: the cut is the data's own 70th percentile
    data_only = cut_of(np.bincount([bin_of(s) for s in scores], minlength=BINS).astype(float), SHARE)
    assert sketch.cut(SHARE) == data_only
    assert sketch.stats().prior_left == 0
    assert data_only.threshold < half < np.quantile(TRAINING, 1 - SHARE)


def test_the_time_window_forgets_old_scores() -> None:
    clock = FakeClock()
    window = CalibrationWindow(decisions=100_000, seconds=3_600, prior_weight=1)
    sketch = ScoreSketch(TRAINING, window, clock=clock)
    for score in clustered_scores(400, seed=6, centre=0.3):
        sketch.record(score, False)
        clock.now += 1.0
    assert sketch.stats().decisions == 400
    clock.now += 3_600  # every slice is now older than the window
    assert sketch.stats().decisions == 0
    for score in clustered_scores(400, seed=7, centre=0.7):
        sketch.record(score, True)
    assert sketch.stats().decisions == 400 and sketch.stats().prompted_share == 1.0
    assert sketch.cut(SHARE).threshold > 0.69  # the 0.3 scores are gone


def test_the_decision_window_keeps_about_the_last_n() -> None:
    window = CalibrationWindow(decisions=1_600, prior_weight=1)
    sketch = ScoreSketch(TRAINING, window, clock=FakeClock())
    for score in clustered_scores(5_000, seed=8, centre=0.3):
        sketch.record(score, False)
    for score in clustered_scores(1_600, seed=9, centre=0.7):
        sketch.record(score, True)
    stats = sketch.stats()
    assert 1_600 <= stats.decisions <= 1_600 + 1_600 // SLICES
    assert stats.prompted_share is not None and stats.prompted_share > 0.9
    changed, dropped = sketch.changes()
    assert len(changed) + len(dropped) > SLICES  # what a replica publishes and deletes
    assert len(changed) <= SLICES + 2


def test_slices_round_trip_and_merge_like_one_sketch() -> None:
    clock = FakeClock()
    window = CalibrationWindow(decisions=4_000, prior_weight=1)
    one, other, whole = (ScoreSketch(TRAINING, window, clock=clock, origin=name) for name in ("a", "b", "w"))
    scores = clustered_scores(3_000, seed=10, spread=0.05)
    for index, score in enumerate(scores):
        (one if index % 2 else other).record(score, score > 0.55)
        whole.record(score, score > 0.55)
    published = [Slice.decode(piece.encode()) for piece in other.changes()[0]]
    assert sum(piece.n for piece in published) == 1_500
    one.merge_remote(published)
    assert one.stats().decisions == whole.stats().decisions == 3_000
    assert one.stats().prompted == whole.stats().prompted
    assert one.cut(SHARE) == whole.cut(SHARE)
    one.merge_remote([])  # Redis gone: back to its own half
    assert one.stats().decisions == 1_500
    with pytest.raises(ValueError):
        Slice.decode("v0:nonsense")


def test_decide_applies_a_cut_to_a_real_model() -> None:
    classifier = load_classifier("fast")
    messages = [{"role": "user", "content": "How do refunds work?"}]
    score = classifier.score(messages).value
    below = Cut(0.0, bin_of(score) - 1, 0.0)
    above = Cut(1.0, bin_of(score) + 1, 0.0)
    assert decide(classifier, messages, below).arm == "prompted"
    assert decide(classifier, messages, above).arm == "fine_tuned"
    boundary = Cut(score, bin_of(score), 0.5)
    assert decide(classifier, messages, boundary, draw=lambda: 0.4).arm == "prompted"
    assert decide(classifier, messages, boundary, draw=lambda: 0.6).arm == "fine_tuned"
    assert decide(classifier, messages, boundary).threshold == score
