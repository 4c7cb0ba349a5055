"""What every classifier returns, and the one method the gateway relies on (``ChatScorer``: ``policies.Classifier`` is
the YAML `classifier:` block that picks one)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Score:
    """Estimated need for the strong (prompted) arm, in [0, 1], with what drove it.

    `judgeable` is False when the request had no text to judge (empty, images only); `value`
    is then a neutral 0.5 that callers should not act on -- `decide` sends such requests to its
    low-confidence arm instead.
    """

    value: float
    reasons: tuple[str, ...]
    judgeable: bool


@runtime_checkable
class ChatScorer(Protocol):
    """Anything that can score an OpenAI-format chat."""

    def score(self, messages: Sequence[Mapping[str, Any]]) -> Score: ...
