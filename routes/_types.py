"""What every classifier returns, and the one method the gateway relies on (``ChatScorer``: ``policies.Classifier`` is
the YAML `classifier:` block that picks one)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Score:
    """Estimated need for the strong (prompted) arm, in [0, 1], with what drove it.

    `judgeable` is False when the request had no text to judge (empty, images only); `value`
    is then a neutral 0.5 that callers should not act on -- `decide` sends such requests to its
    low-confidence arm instead.
    """

    value: float
    judgeable: bool
    explain: Callable[[], tuple[str, ...]] = field(default=tuple, repr=False, compare=False)

    @property
    def reasons(self) -> tuple[str, ...]:
        """The largest pushes behind `value` (e.g. 'length_words+0.21'), worked out only when asked.

        The gateway routes on `value` alone; weighing and formatting the reasons on every request
        was ~146k of the `fast` route's 818k extra instructions per request (docs/BENCHMARKS.md).
        """
        return self.explain()


@runtime_checkable
class ChatScorer(Protocol):
    """Anything that can score an OpenAI-format chat."""

    def score(self, messages: Sequence[Mapping[str, Any]]) -> Score: ...
