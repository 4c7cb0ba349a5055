"""The compiled scorer (`routes/_scorer.c`) when this install could build it, else None.

The extension is optional (pyproject.toml): an install without a C compiler still serves, its
decisions taking the Python path, which gives the linear log-odds bit for bit and the topic prior
to ~1e-6 (tests/routes/test_compiled_scorer.py).
"""

from __future__ import annotations

import importlib
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray


@runtime_checkable
class Kernels(Protocol):
    """`routes._scorer`'s functions (documented in its source); the module is checked against it on load."""

    def hashed_logit(
        self,
        dense: tuple[float, ...],
        dense_weights: NDArray[np.float64],
        words: list[str],
        lower: bytes,
        multiple_choice: bool,
        bits: int,
        hashed_weights: NDArray[np.float32],
        bias: float,
        /,
    ) -> float: ...

    def topic_logit(
        self,
        ids: list[int],
        vectors: NDArray[np.float32],
        centroids: NDArray[np.float32],
        values: NDArray[np.float64],
        top: int,
        temperature: float,
        p_clip: float,
        /,
    ) -> float: ...


def _load() -> Kernels | None:
    try:
        module = importlib.import_module("routes._scorer")
    except ImportError:
        return None
    return module if isinstance(module, Kernels) else None


KERNELS = _load()
