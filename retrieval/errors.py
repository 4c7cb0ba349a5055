"""The exceptions of the knowledge layer, one tree, raised (never returned).

    RetrievalError                  base: anything this package raises on purpose
    ├── RetrievalConfigError        caller's mistake (4xx-like): bad collection name,
    │                               a collection built with another embedding model
    ├── DocumentError               one input file cannot be read or parsed; ingestion
    │                               records it for that file and moves on
    └── RetrievalUnavailable        upstream failure (5xx-like): Chroma or the embedding
        │                           endpoint unreachable or erroring
        └── RetrievalTimeout        no answer within the caller's deadline (queued behind
                                    other retrievals, or a store slower than the budget)

The gateway catches ``RetrievalUnavailable`` and answers without context (degraded),
counting a timeout apart from an outage (the first calls for capacity, the second for
repair); the other two indicate a fix is needed on the caller's side. Library exceptions
(chromadb, httpx, onnxruntime) are translated where they are raised, with ``from exc``.
"""

from __future__ import annotations

from pathlib import Path


class RetrievalError(Exception):
    """Base class of every error the retrieval package raises on purpose."""


class RetrievalConfigError(RetrievalError):
    """The request or configuration is wrong; retrying will not help."""


class DocumentError(RetrievalError):
    """One file could not be loaded; carries the path so reports can name it."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class RetrievalUnavailable(RetrievalError):
    """The knowledge store or embedding upstream cannot answer within its budget."""


class RetrievalTimeout(RetrievalUnavailable):
    """The deadline passed before the store answered: load or a slow store, not necessarily an outage."""
