"""Exact and near-duplicate removal, before the split: a test example must not have a twin in training.

Exact duplicates share their prompt after case and whitespace folding. Near duplicates are prompts whose
MiniLM sentence embeddings (the encoder the retrieval layer ships) have a cosine of at least
``threshold``; each group of them (linked transitively) keeps its first member, in capture order. Removing
them before splitting, rather than after, is what makes "no test example shares a near duplicate with
train" hold by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gateway.dataset.examples import Example

Embed = Callable[[Sequence[str]], NDArray[np.float32]]
NEAR_DUPLICATE_COSINE = 0.92
_BLOCK = 1024  # rows of the similarity matrix at a time: memory stays at _BLOCK x n floats


@dataclass(frozen=True, slots=True)
class Deduplicated:
    kept: list[Example]
    exact: int
    near: int


def _folded(text: str) -> str:
    return " ".join(text.casefold().split())


def _first_of_each_group(count: int, pairs: Sequence[tuple[int, int]]) -> list[int]:
    """Union-find over ``pairs``; the smallest index of each group, in order."""
    parent = list(range(count))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return sorted({root(i) for i in range(count)})


def _similar_pairs(vectors: NDArray[np.float32], threshold: float) -> list[tuple[int, int]]:
    """Index pairs (i < j) whose cosine reaches ``threshold``, a block of rows at a time."""
    pairs: list[tuple[int, int]] = []
    for start in range(0, vectors.shape[0], _BLOCK):
        rows, cols = np.nonzero(vectors[start:start + _BLOCK] @ vectors.T >= threshold)
        pairs += [(int(r) + start, int(c)) for r, c in zip(rows, cols, strict=True) if c > r + start]
    return pairs


def unit_rows(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    """Each row scaled to length 1, so a dot product is a cosine (a zero row stays zero)."""
    rows = vectors.astype(np.float32)
    unit: NDArray[np.float32] = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    return unit


def deduplicate(examples: Sequence[Example], embed: Embed, threshold: float = NEAR_DUPLICATE_COSINE) -> Deduplicated:
    seen: set[str] = set()
    unique: list[Example] = []
    for example in examples:
        key = _folded(example.prompt_text)
        if key not in seen:
            seen.add(key)
            unique.append(example)
    if len(unique) < 2:
        return Deduplicated(unique, len(examples) - len(unique), 0)
    vectors = unit_rows(embed([example.prompt_text for example in unique]))
    kept = [unique[i] for i in _first_of_each_group(len(unique), _similar_pairs(vectors, threshold))]
    return Deduplicated(kept, len(examples) - len(unique), len(unique) - len(kept))
