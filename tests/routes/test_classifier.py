"""Scoring odd inputs, the arm decision, share thresholds and model files, for both model kinds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from routes import ChatScorer, Decision, EmbeddingClassifier, decide, load_classifier
from routes._linear import ModelFileError
from routes._messages import conversation
from routes._models import read_model
from routes._static import StaticClassifier
from tests.support.classifiers import toy_embedding_model, toy_linear_model, user_messages


def test_is_a_classifier() -> None:
    assert isinstance(toy_linear_model(), ChatScorer)


def test_longer_prompt_scores_higher_with_reasons() -> None:
    short = toy_linear_model().score(user_messages("hi there"))
    long = toy_linear_model().score(user_messages("explain " * 200))
    assert 0.0 <= short.value < long.value <= 1.0
    assert long.judgeable and long.reasons[0].startswith("length_chars+")


@pytest.mark.parametrize(
    "messages",
    [
        [],
        user_messages(""),
        user_messages("   \n"),
        user_messages(None),
        user_messages([{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]),
        [{"role": "assistant", "content": "only an assistant turn"}],
        ["not a mapping"],
    ],
)
def test_unjudgeable_inputs(messages: list[object]) -> None:
    result = toy_linear_model().score(messages)  # type: ignore[arg-type]
    assert (result.value, result.judgeable, result.reasons) == (0.5, False, ("no text to judge",))


def test_list_content_with_text_is_judged() -> None:
    parts = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "x"}},
    ]
    assert toy_linear_model().score(user_messages(parts)).judgeable


def test_decide_uses_threshold_and_low_confidence_arm() -> None:
    clf = toy_linear_model()
    value = clf.score(user_messages("hello world")).value
    assert decide(clf, user_messages("hello world"), value).arm == "prompted"
    assert decide(clf, user_messages("hello world"), value + 1e-9).arm == "fine_tuned"
    assert decide(clf, [], 0.5) == Decision("prompted", None, 0.5)
    assert decide(clf, [], 0.5, low_confidence_arm="fine_tuned").arm == "fine_tuned"
    with pytest.raises(ValueError):
        decide(clf, [], 0.5, low_confidence_arm="cheap")


def test_threshold_for_share_reads_calibration_quantiles() -> None:
    clf = toy_linear_model()
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
    toy_linear_model().save(path)
    loaded = read_model(path)
    assert loaded.score(user_messages("some prompt")).value == pytest.approx(
        toy_linear_model().score(user_messages("some prompt")).value
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
    hard = clf.score(user_messages("Prove that there are infinitely many primes p such that p + 2 is also prime."))
    assert hard.judgeable and 0.0 <= hard.value <= 1.0 and hard.reasons
    assert 0.0 < clf.threshold_for_share(0.3) < 1.0


class _FakeEmbedder:
    """Two-dimensional 'embeddings': maths-like prompts point one way, the rest the other."""

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        rows = [[1.0, 0.0] if any(c.isdigit() for c in t) else [0.0, 1.0] for t in texts]
        return np.asarray(rows, dtype=np.float32)


def test_embedding_model_adds_the_topic_prior_to_the_linear_logit() -> None:
    clf = toy_embedding_model(_FakeEmbedder())
    assert isinstance(clf, ChatScorer)
    maths, chat = clf.score(user_messages("Add 3 and 4 apples.")), clf.score(user_messages("Add some and more apples."))
    assert maths.value > chat.value  # same length, different topic
    linear_logit = clf.linear.logit(conversation(user_messages("Add 3 and 4 apples.")))[0]
    expected = 1.0 / (1.0 + np.exp(-(np.log(0.9 / 0.1) + linear_logit)))
    assert maths.value == pytest.approx(expected)
    assert any(reason.startswith("topic+") for reason in maths.reasons)
    empty = clf.score([])
    assert (empty.value, empty.judgeable, empty.reasons) == (0.5, False, ("no text to judge",))


def test_embedding_model_batch_scores_equal_single_scores() -> None:
    embedder = _FakeEmbedder()
    clf = toy_embedding_model(embedder)
    chats = [user_messages("Add 3 and 4."), [], user_messages("Tell me a story about a cat."), user_messages("x " * 300)]
    batch = clf.score_batch(chats)
    assert embedder.calls == 1
    assert batch.tolist() == pytest.approx([clf.score(c).value for c in chats])
    assert clf.threshold_for_share(0.3) == pytest.approx(0.1 + 0.8 * 0.7)


def test_embedding_model_round_trip(tmp_path: Path) -> None:
    embedder = _FakeEmbedder()
    path = tmp_path / "e.npz"
    toy_embedding_model(embedder).save(path)
    loaded = read_model(path, embedder=embedder)
    assert isinstance(loaded, EmbeddingClassifier)
    for text in ("Add 3 and 4.", "Write a poem."):
        assert loaded.score(user_messages(text)).value == pytest.approx(toy_embedding_model(embedder).score(user_messages(text)).value)


def test_unknown_model_kind_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "odd.npz", format_version=np.int64(2), kind=np.asarray("forest"))
    with pytest.raises(ModelFileError, match="unknown model kind"):
        read_model(tmp_path / "odd.npz")


def test_shipped_models_by_name() -> None:
    default, fast = load_classifier("default"), load_classifier("fast")
    assert default is load_classifier() and isinstance(default, EmbeddingClassifier)
    assert isinstance(fast, StaticClassifier)
    prompt = user_messages("A train leaves at 3:15 pm and travels 2.5 hours at 60 miles per hour. When does it arrive?")
    # both stack the same linear model, each with its own topic prior (static vs MiniLM)
    assert fast.linear.score(prompt) == default.linear.score(prompt)
    fast_score = fast.score(prompt)
    assert fast_score.judgeable and fast_score.reasons and 0.0 < fast_score.value < 1.0
    assert 0.0 < default.score(prompt).value < 1.0
    assert 0.0 < default.threshold_for_share(0.3) < 1.0
