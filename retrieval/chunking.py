"""Split blocks into retrieval chunks along the document's structure.

A chunk never spans two sections (heading paths) or two records/pages, fits a
token budget counted in the encoder's units (see :mod:`retrieval.tokens`), and
repeats the tail of the previous chunk of the same section (overlap) so an
answer cut at a boundary is still whole in one chunk. Each chunk starts with
its heading path ("Pricing > Annual plans"), which both cites the section and
gives the embedding the context a bare paragraph lacks.

Chunk ids are ``<source digest>-<position>-<content digest>``: stable across
runs, changed by any edit to a chunk's text or metadata, which is how
ingestion tells unchanged chunks from new ones.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby

from retrieval.documents import Block, Scalar
from retrieval.tokens import CountTokens

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
HEADING_SEPARATOR = " > "


@dataclass(frozen=True)
class ChunkingConfig:
    """Budget per chunk (heading line included) and overlap, in tokens.

    200 + [CLS]/[SEP] stays under MiniLM's 256-piece window with room for the
    estimate's error when an encoder without a tokenizer is used.
    """

    max_tokens: int = 200
    overlap_tokens: int = 40

    def __post_init__(self) -> None:
        if self.max_tokens < 16 or not 0 <= self.overlap_tokens < self.max_tokens // 2:
            raise ValueError("need max_tokens >= 16 and 0 <= overlap_tokens < max_tokens / 2")


@dataclass(frozen=True)
class Chunk:
    """One unit of retrieval; ``metadata`` holds source, position, headings, content_hash."""

    id: str
    source: str
    text: str
    metadata: Mapping[str, Scalar]


@dataclass(frozen=True)
class _Unit:
    """A sentence, line or word window, and the separator that precedes it in its block."""

    text: str
    joiner: str
    tokens: int = 0


def content_hash(text: str, metadata: Mapping[str, Scalar]) -> str:
    """Digest of what a chunk says, so equal content can reuse its embedding."""
    payload = text + "\0" + json.dumps(dict(metadata), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def chunk_id(source: str, position: int, digest: str) -> str:
    """Stable id: same source, position and content give the same id."""
    return f"{hashlib.sha256(source.encode()).hexdigest()[:12]}-{position:05d}-{digest}"


def _units(block: Block) -> list[_Unit]:
    """Multi-line blocks (lists, tables, code) split by line, prose by sentence."""
    if "\n" in block.text:
        parts, joiner = block.text.splitlines(), "\n"
    else:
        parts, joiner = _SENTENCE_END.split(block.text), " "
    units = [_Unit(p, joiner) for p in parts if p.strip()]
    return [_Unit(units[0].text, "\n\n"), *units[1:]] if units else []


def _split_long(unit: _Unit, limit: int, count: CountTokens) -> list[_Unit]:
    """Cut a unit longer than ``limit`` into word windows; whitespace splits add no pieces."""
    words = unit.text.split()
    windows: list[_Unit] = []
    current: list[str] = []
    used = 0
    for word, tokens in zip(words, count(words), strict=True):
        if current and used + tokens > limit:
            windows.append(_Unit(" ".join(current), " " if windows else unit.joiner, used))
            current, used = [], 0
        current.append(word)
        used += tokens
    windows.append(_Unit(" ".join(current), " " if windows else unit.joiner, used))
    return windows


def _pack(units: list[_Unit], limit: int, overlap: int) -> list[list[_Unit]]:
    """Greedy packing; each new window starts with the previous one's tail of <= overlap tokens."""
    windows: list[list[_Unit]] = []
    current: list[_Unit] = []
    used = 0
    for unit in units:
        if current and used + unit.tokens > limit:
            windows.append(current)
            tail: list[_Unit] = []
            tail_tokens = 0
            for previous in reversed(current):
                if (
                    tail_tokens + previous.tokens > overlap
                    or tail_tokens + previous.tokens + unit.tokens > limit
                ):
                    break
                tail.insert(0, previous)
                tail_tokens += previous.tokens
            current, used = tail, tail_tokens
        current.append(unit)
        used += unit.tokens
    if current:
        windows.append(current)
    return windows


def _render(units: list[_Unit]) -> str:
    return "".join(u.joiner + u.text for u in units).strip()


def chunk_blocks(
    source: str, blocks: Sequence[Block], count: CountTokens, config: ChunkingConfig | None = None
) -> list[Chunk]:
    """Chunks of one document in reading order; positions are 0-based and contiguous."""
    config = config or ChunkingConfig()
    chunks: list[Chunk] = []
    sections = groupby(blocks, key=lambda b: (b.headings, tuple(sorted(b.metadata.items()))))
    for (headings, meta_items), section in sections:
        header = HEADING_SEPARATOR.join(headings)
        header_tokens = count([header])[0] if header else 0
        limit = max(config.max_tokens - header_tokens, config.max_tokens // 2)
        raw = [u for block in section for u in _units(block)]
        sized = [_Unit(u.text, u.joiner, n) for u, n in zip(raw, count([u.text for u in raw]), strict=True)]
        units = [
            piece for u in sized for piece in (_split_long(u, limit, count) if u.tokens > limit else [u])
        ]
        for window in _pack(units, limit, config.overlap_tokens):
            body = _render(window)
            text = f"{header}\n\n{body}" if header else body
            metadata: dict[str, Scalar] = {**dict(meta_items), "headings": header}
            digest = content_hash(text, metadata)
            position = len(chunks)
            metadata |= {"source": source, "position": position, "content_hash": digest}
            chunks.append(Chunk(chunk_id(source, position, digest), source, text, metadata))
    return chunks
