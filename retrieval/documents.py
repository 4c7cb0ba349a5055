"""The intermediate form between loaders and the chunker.

Loaders turn each file format into ``Block``s (a paragraph-sized piece of text
with the heading path above it); the chunker only ever sees blocks, so adding a
format never touches chunking.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: Metadata values Chroma can store and filter on.
Scalar = str | int | float | bool

#: Metadata keys the chunker sets itself; loaders must not produce them.
RESERVED_KEYS = frozenset({"source", "position", "headings", "content_hash"})


@dataclass(frozen=True)
class Block:
    """A paragraph (or list, table, code block) under its heading path."""

    text: str
    headings: tuple[str, ...] = ()
    metadata: Mapping[str, Scalar] = field(default_factory=dict)
