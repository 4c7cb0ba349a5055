"""The compiled scorer (routes/_scorer.c) gives the Python path's numbers, on real traffic and odd input.

A decision takes the compiled path whenever the extension is built; explanations, training and
an install without a C compiler take the numpy path. The two must agree: the linear log-odds bit
for bit (same hashing, same pairwise summation order), the `fast` model's score to float32
rounding, with no decision moved at any calibrated threshold. Under CI the extension must be
built (setup.py), so a broken build cannot pass as the slower path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from routes import EmbeddingClassifier, load_classifier
from routes._compiled import KERNELS, Kernels
from routes._features import WINDOW, scan
from routes._linear import LinearClassifier
from routes._messages import conversation
from routes._static import StaticClassifier
from routes.training.data import load_examples
from tests.support.classifiers import toy_linear_model
from tests.support.required import routing_data, unavailable

Chat = Sequence[Mapping[str, Any]]

ODD_CHATS: list[Chat] = [
    [{"role": "user", "content": "Résumé 東京 🚀: prove that ∀x \u2208 \u211d, x² ≥ 0 — in ½ a page"}],
    [{"role": "user", "content": "ß" * 3 + "€" * 2 + "😀" + " é 1 22 333 4444"}],  # 2-, 3- and 4-byte UTF-8
    [{"role": "user", "content": "solve 12 + 7 = ? " * (WINDOW // 10)}],  # longer than the feature window
    [{"role": "user", "content": "Which is a prime?\nA) 4\nB) 9\nC) 7\nD) 15"}],  # multiple choice
    [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"},
     {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Write a haiku about tax law"}],
    [{"role": "user", "content": [{"type": "text", "text": "Explain"}, {"type": "text", "text": "eigenvalues"}]}],
    [{"role": "user", "content": "x"}],
    [{"role": "user", "content": "\u200b"}],  # no word piece the topic table knows
]


@pytest.fixture(scope="module")
def kernels() -> Kernels:
    if KERNELS is None:
        unavailable("routes._scorer is not built", "pip install -e . where a C compiler is installed")
    return KERNELS


@pytest.fixture(scope="module")
def fast() -> StaticClassifier:
    model = load_classifier("fast")
    assert isinstance(model, StaticClassifier)
    return model


@pytest.fixture(scope="module")
def traffic() -> list[Chat]:
    """Every prompt of the shared routing data (MMLU, GSM8K, MT-Bench), then the odd ones."""
    prompts = [example.prompt for name in ("mmlu", "gsm8k", "mt_bench")
               for example in load_examples(routing_data(name), "all")]
    return [[{"role": "user", "content": prompt}] for prompt in prompts] + ODD_CHATS


@pytest.fixture
def python_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Decisions as an install without the extension makes them."""
    monkeypatch.setattr("routes._linear.KERNELS", None)
    monkeypatch.setattr("routes._static.KERNELS", None)
    yield


def _linear(name: str) -> LinearClassifier:
    """A shipped model's linear part, or random weights at the toy model's (smaller) hash width."""
    if name != "random":
        model = load_classifier(name)
        assert isinstance(model, StaticClassifier | EmbeddingClassifier)
        return model.linear
    rng = np.random.default_rng(7)
    toy = toy_linear_model()
    return dataclasses.replace(toy, dense_weights=rng.normal(size=toy.dense_weights.size),
                               hashed_weights=rng.normal(size=toy.hashed_weights.size).astype(np.float32))


@pytest.mark.usefixtures("kernels")
@pytest.mark.parametrize("name", ["default", "fast", "random"])
def test_linear_log_odds_are_bit_identical(name: str, traffic: list[Chat]) -> None:
    linear = _linear(name)
    convs = [conversation(chat) for chat in traffic]
    compiled = np.array([linear.log_odds(conv) for conv in convs])
    python = np.array([linear.logit(conv)[0] for conv in convs])
    assert len(traffic) > 10_000
    np.testing.assert_array_equal(compiled, python)


@pytest.mark.usefixtures("kernels")
def test_fast_scores_match_the_numpy_path(fast: StaticClassifier, traffic: list[Chat]) -> None:
    compiled = np.array([fast.score(chat).value for chat in traffic])
    python = np.array([fast.stack.score(chat).value for chat in traffic])
    assert np.abs(compiled - python).max() < 1e-6
    for threshold in fast.calibration:
        assert np.array_equal(compiled >= threshold, python >= threshold)
    np.testing.assert_array_equal(fast.score_batch(traffic), compiled)


@pytest.mark.usefixtures("kernels")
def test_a_prompt_without_known_pieces_takes_the_numpy_path_exactly(fast: StaticClassifier) -> None:
    chat = [{"role": "user", "content": "\u200b"}]
    assert fast.score(chat).value == fast.stack.score(chat).value


@pytest.mark.usefixtures("kernels")
def test_explanations_are_the_numpy_paths(fast: StaticClassifier) -> None:
    for chat in ODD_CHATS:
        score = fast.score(chat)
        assert score.explain() == fast.stack.score(chat).explain()


def test_without_the_extension_scores_are_the_numpy_paths(
    python_path: None, fast: StaticClassifier, traffic: list[Chat]
) -> None:
    sample = traffic[::97]
    assert [fast.score(chat).value for chat in sample] == [fast.stack.score(chat).value for chat in sample]


def test_kernel_arguments_are_checked(kernels: Kernels, fast: StaticClassifier) -> None:
    linear, stack = fast.linear, fast.stack
    found = scan(conversation([{"role": "user", "content": "what is 2 + 2"}]))

    def hashed(**change: Any) -> float:
        args: dict[str, Any] = {"dense": found.dense, "dense_weights": linear.dense_weights, "words": found.words,
                "lower": found.lower, "multiple_choice": found.multiple_choice, "bits": linear.bits,
                "hashed_weights": linear.hashed_weights, "bias": linear.bias} | change
        return kernels.hashed_logit(*args.values())

    def topic(**change: Any) -> float:
        args: dict[str, Any] = {"ids": [1, 2], "vectors": fast.encoder.vectors, "centroids": stack.centroids,
                "values": stack.centroid_values, "top": stack.top, "temperature": stack.temperature,
                "p_clip": 1e-6} | change
        return kernels.topic_logit(*args.values())

    assert np.isfinite(hashed()) and np.isfinite(topic())
    with pytest.raises(TypeError, match="dense_weights must be a contiguous array of 'd' items"):
        hashed(dense_weights=linear.dense_weights.astype(np.float32))
    with pytest.raises(TypeError, match="hashed_weights must be a contiguous array of 'f' items"):
        hashed(hashed_weights=np.asarray(linear.hashed_weights, dtype=np.float64))
    with pytest.raises(ValueError, match="hashed_weights must hold 2\\*\\*bits entries"):
        hashed(bits=linear.bits - 1)
    with pytest.raises(ValueError, match="bits must be within"):
        hashed(bits=0)
    with pytest.raises(ValueError, match="dense and dense_weights differ in length"):
        hashed(dense=found.dense[:-1])
    with pytest.raises(TypeError, match="dense must be a tuple"):
        hashed(words=tuple(found.words))
    with pytest.raises(ValueError, match="ids must be a non-empty list"):
        topic(ids=[])
    with pytest.raises(IndexError, match="outside the table"):
        topic(ids=[len(fast.encoder.vectors)])
    with pytest.raises(ValueError, match="top must be within"):
        topic(top=65)
    with pytest.raises(ValueError, match="do not match"):
        topic(centroids=stack.centroids[:, :-1].copy())
