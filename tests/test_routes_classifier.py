"""Scoring odd inputs, the arm decision, share thresholds and model files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from routes import Classifier, Decision, LinearClassifier, Score, decide, load_classifier
from routes._features import DENSE_NAMES
from routes._linear import ModelFileError, read_model

BITS = 10


def _model() -> LinearClassifier:
    """A hand-made model: longer prompts score higher, calibration spread evenly over [0.2, 0.8]."""
    weights = np.zeros(len(DENSE_NAMES))
    weights[DENSE_NAMES.index("length_chars")] = 1.0
    return LinearClassifier(
        bits=BITS,
        dense_weights=weights,
        dense_means=np.full(len(DENSE_NAMES), 0.0),
        hashed_weights=np.zeros(1 << BITS, dtype=np.float32),
        bias=-4.0,
        calibration=np.linspace(0.2, 0.8, 101),
    )


def _user(content: object) -> list[dict[str, object]]:
    return [{"role": "user", "content": content}]


def test_is_a_classifier() -> None:
    assert isinstance(_model(), Classifier)


def test_longer_prompt_scores_higher_with_reasons() -> None:
    short = _model().score(_user("hi there"))
    long = _model().score(_user("explain " * 200))
    assert 0.0 <= short.value < long.value <= 1.0
    assert long.judgeable and long.reasons[0].startswith("length_chars+")


@pytest.mark.parametrize(
    "messages",
    [
        [],
        _user(""),
        _user("   \n"),
        _user(None),
        _user([{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]),
        [{"role": "assistant", "content": "only an assistant turn"}],
        ["not a mapping"],
    ],
)
def test_unjudgeable_inputs(messages: list[object]) -> None:
    result = _model().score(messages)  # type: ignore[arg-type]
    assert result == Score(0.5, ("no text to judge",), judgeable=False)


def test_list_content_with_text_is_judged() -> None:
    parts = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "x"}},
    ]
    assert _model().score(_user(parts)).judgeable


def test_decide_uses_threshold_and_low_confidence_arm() -> None:
    clf = _model()
    value = clf.score(_user("hello world")).value
    assert decide(clf, _user("hello world"), value).arm == "prompted"
    assert decide(clf, _user("hello world"), value + 1e-9).arm == "fine_tuned"
    assert decide(clf, [], 0.5) == Decision("prompted", None, 0.5, ("no text to judge",))
    assert decide(clf, [], 0.5, low_confidence_arm="fine_tuned").arm == "fine_tuned"
    with pytest.raises(ValueError):
        decide(clf, [], 0.5, low_confidence_arm="cheap")


def test_threshold_for_share_reads_calibration_quantiles() -> None:
    clf = _model()
    assert clf.threshold_for_share(0.3) == pytest.approx(0.2 + 0.6 * 0.7)
    assert clf.threshold_for_share(1.0) == 0.0
    assert clf.threshold_for_share(0.0) > 1.0
    shares = [0.1, 0.3, 0.5, 0.9]
    thresholds = [clf.threshold_for_share(s) for s in shares]
    assert thresholds == sorted(thresholds, reverse=True)
    with pytest.raises(ValueError):
        clf.threshold_for_share(1.5)


def test_save_load_round_trip_and_cache(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    _model().save(path)
    loaded = read_model(path)
    assert loaded.score(_user("some prompt")).value == pytest.approx(
        _model().score(_user("some prompt")).value
    )
    assert load_classifier(path) is load_classifier(str(path))


def test_bad_model_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError):
        read_model(tmp_path / "missing.npz")
    np.savez(tmp_path / "old.npz", format_version=np.int64(0))
    with pytest.raises(ModelFileError, match="unsupported model format"):
        read_model(tmp_path / "old.npz")


def test_shipped_default_model_loads_and_scores() -> None:
    clf = load_classifier()
    assert clf is load_classifier(None)
    hard = clf.score(_user("Prove that there are infinitely many primes p such that p + 2 is also prime."))
    assert hard.judgeable and 0.0 <= hard.value <= 1.0 and hard.reasons
    assert 0.0 < clf.threshold_for_share(0.3) < 1.0
