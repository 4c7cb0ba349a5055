"""Turn a score into an arm, so every caller applies the threshold the same way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from ._types import Classifier

Arm = Literal["prompted", "fine_tuned"]
ARMS: tuple[Arm, ...] = ("prompted", "fine_tuned")


@dataclass(frozen=True, slots=True)
class Decision:
    """The chosen arm; `score` is None when the classifier could not judge the request."""

    arm: Arm
    score: float | None
    threshold: float
    reasons: tuple[str, ...]


def decide(
    classifier: Classifier,
    messages: Sequence[Mapping[str, Any]],
    threshold: float,
    low_confidence_arm: str = "prompted",
) -> Decision:
    """Score >= threshold goes to the prompted (strong) arm; unjudgeable input to `low_confidence_arm`.

    The default for unjudgeable input is the strong arm: when we cannot tell, quality wins.
    """
    if low_confidence_arm not in ARMS:
        raise ValueError(f"low_confidence_arm must be one of {ARMS}, got {low_confidence_arm!r}")
    result = classifier.score(messages)
    if not result.judgeable:
        return Decision(cast(Arm, low_confidence_arm), None, threshold, result.reasons)
    arm: Arm = "prompted" if result.value >= threshold else "fine_tuned"
    return Decision(arm, result.value, threshold, result.reasons)
