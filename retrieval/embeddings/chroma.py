"""Adapter that lets Chroma call our encoder instead of its own default.

Chroma's default embedding function downloads an ONNX model on first use; every
collection this package opens is given this adapter so that can never happen.
The adapter is registered under one name and records the encoder's ``model_id``
in the collection configuration (the store also checks it on open).
"""

from __future__ import annotations

from typing import Any

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space

from retrieval.embeddings.base import Encoder
from retrieval.errors import RetrievalConfigError


class EncoderEmbeddingFunction(EmbeddingFunction[Documents]):
    """A chromadb ``EmbeddingFunction`` backed by an :class:`Encoder`."""

    def __init__(self, encoder: Encoder | None, config: dict[str, Any] | None = None) -> None:
        """Pass an encoder; ``config`` alone is for Chroma's bookkeeping copies (see build_from_config)."""
        self._encoder = encoder
        self._config = {"model_id": encoder.model_id, "dim": encoder.dim} if encoder else dict(config or {})

    def __call__(self, input: Documents) -> Embeddings:
        if self._encoder is None:
            raise RetrievalConfigError(
                "this collection is embedded by KnowledgeStore; open it through the store"
            )
        return list(self._encoder.embed(list(input)))

    @staticmethod
    def name() -> str:
        return "hybrid-gateway-encoder"

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine"]

    def get_config(self) -> dict[str, Any]:
        return dict(self._config)

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> EncoderEmbeddingFunction:
        """A config-only copy that embeds nothing.

        Chroma rebuilds the function from the stored config several times per
        upsert for its schema bookkeeping; loading a model there would cost
        0.2 s each time. Embedding always goes through the store's own instance.
        """
        return EncoderEmbeddingFunction(None, config)
