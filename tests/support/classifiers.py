"""Toy classifiers with known answers, shared by the classifier tests of routes/ (the linear, embedding and static stacks)."""

from __future__ import annotations

import numpy as np

from routes import EmbeddingClassifier, LinearClassifier
from routes._embedding import Embedder
from routes._features import DENSE_NAMES

BITS = 10


def user_messages(content: object) -> list[dict[str, object]]:
    """A conversation of one user message whose content is ``content`` (any shape a client may send)."""
    return [{"role": "user", "content": content}]


def toy_linear_model() -> LinearClassifier:
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


def toy_embedding_model(embedder: Embedder, dims: int = 2) -> EmbeddingClassifier:
    """A toy stack: two topic centroids (digits vs words for a fake embedder) over the toy linear model."""
    return EmbeddingClassifier(
        linear=toy_linear_model(),
        centroids=np.eye(2, dims, dtype=np.float32),
        centroid_values=np.array([0.9, 0.2]),
        top=1,
        temperature=20.0,
        weights=np.array([1.0, 1.0]),
        bias=0.0,
        topic_mean=0.0,
        calibration=np.linspace(0.1, 0.9, 101),
        embedder=embedder,
    )
