"""The encoder interface every embedding backend implements.

Stores and ingestion depend only on this Protocol, so the local MiniLM model and
a provider's ``/v1/embeddings`` endpoint are interchangeable. ``model_id`` names
the vector space: the store records it per collection and refuses to mix spaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray


@runtime_checkable
class Encoder(Protocol):
    """Turns texts into float32, L2-normalised row vectors of width ``dim``."""

    model_id: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Unit-length float32 rows, so cosine similarity is a dot product."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms: NDArray[np.float32] = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
