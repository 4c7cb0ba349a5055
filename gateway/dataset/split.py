"""Train, validation and test: deterministic by hash, stratified by the classifier's score band.

Each example's place comes from the SHA-256 of its request id, so the same captures always split the
same way and adding captures never moves an old one between sets. Within each score band (quarters
of [0, 1], and one band for requests without a score) the examples are ordered by that hash: the first
``test_share`` go to the test set (never used for training), and of the rest the guide's 20% to
validation, 80% to training. Every band is thus in each set in proportion.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.dataset.examples import Example

BANDS = (0.25, 0.5, 0.75)
"""Upper bounds of the first three score bands; the fourth is [0.75, 1]."""


@dataclass(frozen=True, slots=True)
class Splits:
    train: list[Example]
    validation: list[Example]
    test: list[Example]


def band(score: float | None) -> str:
    if score is None:
        return "unscored"
    index = sum(score >= bound for bound in BANDS)
    low = 0.0 if index == 0 else BANDS[index - 1]
    high = BANDS[index] if index < len(BANDS) else 1.0
    return f"{low:.2f}-{high:.2f}"


def _hash(example: Example) -> str:
    return hashlib.sha256(example.request_id.encode()).hexdigest()


def split(examples: Sequence[Example], test_share: float = 0.1, validation_share: float = 0.2) -> Splits:
    """``test_share`` of each band to test; ``validation_share`` of the rest to validation; the rest to train."""
    bands: dict[str, list[Example]] = {}
    for example in examples:
        bands.setdefault(band(example.score), []).append(example)
    train: list[Example] = []
    validation: list[Example] = []
    test: list[Example] = []
    for name in sorted(bands):
        members = sorted(bands[name], key=_hash)
        tested = math.floor(len(members) * test_share + 0.5)
        rest = members[tested:]
        validated = math.floor(len(rest) * validation_share + 0.5)
        test += members[:tested]
        validation += rest[:validated]
        train += rest[validated:]
    return Splits(sorted(train, key=_hash), sorted(validation, key=_hash), sorted(test, key=_hash))
