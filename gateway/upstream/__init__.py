"""Upstream clients behind one interface, chosen per target by its provider."""

from __future__ import annotations

from gateway.upstream.base import UpstreamClient, UpstreamReply, UpstreamStream
from gateway.upstream.litellm_client import LiteLLMClient, warm_up
from gateway.upstream.openai_compat import OpenAICompatibleClient
from policies import Target

__all__ = ["UpstreamClient", "UpstreamReply", "UpstreamStream", "Upstreams", "warm_up"]


class Upstreams:
    """Holds one client per upstream kind and hands out the one a target needs."""

    def __init__(self, max_reply_bytes: int) -> None:
        self._direct = OpenAICompatibleClient(max_reply_bytes)
        self._litellm = LiteLLMClient()

    def for_target(self, target: Target) -> UpstreamClient:
        return self._direct if target.openai_compatible else self._litellm

    async def aclose(self) -> None:
        await self._direct.aclose()
        await self._litellm.aclose()
