"""Watch what a real encoder's tokenizer is handed: the cut before tokenising is what bounds its cost."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from retrieval import MiniLMEncoder


class RecordingTokenizer:
    """Delegates to a `tokenizers.Tokenizer`; `lengths` holds the character count of each text encoded."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.lengths: list[int] = []

    def encode(self, text: str, *args: Any, **kwargs: Any) -> Any:
        self.lengths.append(len(text))
        return self.inner.encode(text, *args, **kwargs)

    def encode_batch(self, texts: Sequence[str], *args: Any, **kwargs: Any) -> Any:
        self.lengths.extend(len(text) for text in texts)
        return self.inner.encode_batch(texts, *args, **kwargs)


@contextmanager
def recording(encoder: MiniLMEncoder) -> Iterator[RecordingTokenizer]:
    """The encoder as it is (model, session, tokenizer), its tokenizer noting input lengths meanwhile."""
    inner = encoder._tokenizer
    recorder = RecordingTokenizer(inner)
    encoder._tokenizer = recorder
    try:
        yield recorder
    finally:
        encoder._tokenizer = inner
