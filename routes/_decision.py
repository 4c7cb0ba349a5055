"""Turn a score into an arm, so every caller applies the threshold the same way."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policies.schema import ARM_NAMES, ArmName

from ._calibration import Cut
from ._types import ChatScorer

DEFAULT_THRESHOLD = 0.5
"""The cut for a route whose classifier sets neither ``threshold`` nor ``strong_share``."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The chosen arm; `score` is None when the classifier could not judge the request."""

    arm: ArmName
    score: float | None
    threshold: float


def decide(
    classifier: ChatScorer,
    messages: Sequence[Mapping[str, Any]],
    threshold: float | Cut,
    low_confidence_arm: str = "prompted",
    draw: Callable[[], float] = random.random,
) -> Decision:
    """Score >= threshold goes to the prompted (strong) arm; unjudgeable input to `low_confidence_arm`.

    A calibrated `Cut` splits its own bin at random (`draw`), so tied scores still meet the share.
    The default for unjudgeable input is the strong arm: when we cannot tell, quality wins.
    """
    if low_confidence_arm not in ARM_NAMES:
        raise ValueError(f"low_confidence_arm must be one of {ARM_NAMES}, got {low_confidence_arm!r}")
    shown = threshold.threshold if isinstance(threshold, Cut) else threshold
    result = classifier.score(messages)
    if not result.judgeable:
        return Decision(low_confidence_arm, None, shown)
    strong = threshold.prompted(result.value, draw) if isinstance(threshold, Cut) else result.value >= threshold
    arm: ArmName = "prompted" if strong else "fine_tuned"
    return Decision(arm, result.value, shown)
