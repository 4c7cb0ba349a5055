"""The small interface every upstream client implements.

One module per upstream kind (direct OpenAI-compatible HTTP, litellm adapter),
the same three calls each, so the request path never branches on providers.
Clients translate their library's exceptions into ``gateway.errors`` at this
boundary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from policies import Target


@dataclass(frozen=True)
class UpstreamReply:
    """A complete upstream answer: raw bytes to pass through, and the parsed JSON to account from."""

    body: bytes
    data: dict[str, Any]


class UpstreamStream(Protocol):
    """An open SSE stream; headers already arrived, so errors before this point had their status."""

    def chunks(self) -> AsyncIterator[bytes]:
        """Bytes as they arrive; SSE lines may span reads."""
        ...

    async def aclose(self) -> None: ...


class UpstreamClient(Protocol):
    async def complete(self, target: Target, payload: dict[str, Any]) -> UpstreamReply: ...

    async def open_stream(self, target: Target, payload: dict[str, Any]) -> UpstreamStream: ...

    async def embed(self, target: Target, payload: dict[str, Any]) -> UpstreamReply: ...

    async def aclose(self) -> None: ...
