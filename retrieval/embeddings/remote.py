"""Provider embeddings through an OpenAI-compatible ``/v1/embeddings`` endpoint.

Used when a deployment prefers a provider's embedding model (reached through the
gateway's own targets) over the local MiniLM. Transport failures and malformed
answers become :class:`~retrieval.errors.RetrievalUnavailable`, so callers handle
one upstream error whatever the backend.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import numpy as np

from retrieval.embeddings.base import l2_normalise
from retrieval.errors import RetrievalUnavailable


class RemoteEncoder:
    """Calls ``{base_url}/embeddings`` with ``{"model", "input": [...]}`` in batches."""

    def __init__(
        self,
        base_url: str,
        model: str,
        dim: int,
        *,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        batch_size: int = 64,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``base_url`` ends in ``/v1`` like the OpenAI SDK's; ``transport`` is for tests."""
        self.model_id = f"remote:{model}"
        self.dim = dim
        self._model = model
        self._batch_size = batch_size
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s, transport=transport
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in input order; raises RetrievalUnavailable on any upstream fault."""
        rows: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            rows.extend(self._embed_batch(list(texts[start : start + self._batch_size])))
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(rows), self.dim if rows else 0)
        return l2_normalise(vectors) if rows else np.empty((0, self.dim), dtype=np.float32)

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()

    def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        try:
            response = self._client.post("/embeddings", json={"model": self._model, "input": batch})
            response.raise_for_status()
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            rows = [item["embedding"] for item in data]
        except httpx.HTTPError as exc:
            raise RetrievalUnavailable(f"embedding endpoint failed: {exc}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise RetrievalUnavailable(f"embedding endpoint sent a malformed answer: {exc!r}") from exc
        if len(rows) != len(batch) or any(len(row) != self.dim for row in rows):
            raise RetrievalUnavailable(
                f"embedding endpoint returned {len(rows)} vectors for {len(batch)} texts "
                f"or a width other than {self.dim}"
            )
        return rows
