"""Token counting for chunk budgets and context budgets.

Budgets are meaningful only in the encoder's own units (MiniLM truncates at 256
word pieces), so an encoder that can count its tokens is used as is. Any other
encoder (a remote one) falls back to :func:`approx_token_counts`, a regex
estimate that is within about 15% of BERT WordPiece on English prose and costs
nothing to run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

#: Counts tokens of many texts at once (batched so a tokenizer can parallelise).
CountTokens = Callable[[Sequence[str]], list[int]]

_WORD_OR_SYMBOL = re.compile(r"\w+|[^\w\s]")
_LONG_WORD_PIECE = 7  # WordPiece splits rare long words; ~1 extra piece per 7 chars.


@runtime_checkable
class TokenCounter(Protocol):
    """An encoder that can count its own tokens (special tokens excluded)."""

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


def approx_token_counts(texts: Sequence[str]) -> list[int]:
    """Estimate WordPiece counts: one per word or symbol, plus one per 7 chars of long words."""
    counts = []
    for text in texts:
        pieces = _WORD_OR_SYMBOL.findall(text)
        counts.append(len(pieces) + sum(len(p) // _LONG_WORD_PIECE for p in pieces))
    return counts


def token_counter_for(encoder: object) -> CountTokens:
    """The encoder's exact counter when it has one, else the approximation."""
    if isinstance(encoder, TokenCounter):
        return encoder.count_tokens
    return approx_token_counts
