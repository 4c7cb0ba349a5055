"""The response cache: the same final upstream request answered again, at no cost (policy block ``cache:``).

The key is the request as it would go upstream after routing and retrieval (the route, the target, the
payload with the arm's prompt and the retrieved context), so a document update changes the context and with
it the key, and one route's entries are never another route's. A request that samples (``temperature``
absent, which means 1, or above 0) is not cached unless the route allows it: its repeats are meant to
differ. Only a route's first plan is cached (a fallback's answer is another request's), and only answers
that completed: a JSON reply at once, a stream once its ``[DONE]`` was read through to the end, bytes as
the upstream sent them, so a hit replays the same answer. Entries over ``max_entry_bytes`` are not kept.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import orjson

from gateway.accounting.usage import (
    Usage,
    estimate_prompt_tokens,
    estimate_tokens,
    reply_usage,
    sse_chunk,
    sse_payloads,
    stream_text,
    usage_from,
)
from gateway.response_cache.stores import Entry, MemoryStore, RedisStore
from gateway.upstream import UpstreamReply, UpstreamStream
from policies import Cache, SharedState

_DONE = b"data: [DONE]"


def cache_key(route: str, target: str, payload: Mapping[str, Any], limits: Cache) -> str | None:
    """The entry's key for this upstream request, or None when the request may not be cached."""
    temperature = payload.get("temperature")
    if not limits.allow_sampled and temperature != 0:
        return None
    material = orjson.dumps([route, target, payload], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(material).hexdigest()


def stream_usage(body: bytes, messages: Sequence[Mapping[str, Any]]) -> Usage:
    """A whole stream's usage: its usage chunk, else estimated from the prompt and the streamed text."""
    payloads = sse_payloads(body)
    for payload in reversed(payloads):
        if (found := usage_from(sse_chunk(payload))) is not None:
            return found
    return Usage(estimate_prompt_tokens(messages), estimate_tokens(stream_text(payloads)), True)


class ResponseCache:
    """Looks answers up and keeps them: in Redis when configured and up, else in this process."""

    def __init__(self, shared: SharedState, clock: Callable[[], float]) -> None:
        self._redis = RedisStore(shared)
        self._clock = clock
        self._memory: dict[str, MemoryStore] = {}
        self._writes: set[asyncio.Task[None]] = set()

    def _local(self, route: str, limits: Cache) -> MemoryStore:
        store = self._memory.get(route)
        if store is None or (store.limits is not limits and store.limits != limits):  # new, or changed: afresh
            store = self._memory[route] = MemoryStore(limits, self._clock)
        return store

    async def get(self, route: str, key: str, limits: Cache) -> Entry | None:
        if self._redis.enabled:
            found = await self._redis.get(key)
            if found is not None:
                return found[0]
        return self._local(route, limits).get(key)

    def _keep(self, route: str, key: str, entry: Entry, limits: Cache) -> None:
        """In the process at once; in Redis by a write of its own, after the response is on its way (the
        process's store takes it if Redis does not)."""
        if not self._redis.enabled:
            self._local(route, limits).put(key, entry)
            return

        async def write() -> None:
            if not await self._redis.put(key, entry, limits.ttl_s):
                self._local(route, limits).put(key, entry)

        task = asyncio.get_running_loop().create_task(write())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def keep_reply(self, route: str, key: str, reply: UpstreamReply, messages: Sequence[Mapping[str, Any]],
                   limits: Cache) -> None:
        """Keep a JSON answer (not one over ``max_entry_bytes``)."""
        if len(reply.body) <= limits.max_entry_bytes:
            self._keep(route, key, Entry(reply.body, False, reply_usage(reply.data, messages)), limits)

    def recording(self, route: str, key: str, stream: UpstreamStream, messages: Sequence[Mapping[str, Any]],
                  limits: Cache) -> UpstreamStream:
        """``stream`` as it is, kept once it has been read to its ``[DONE]`` within ``max_entry_bytes``."""
        return _Recording(stream, limits.max_entry_bytes,
                          lambda body: self._keep(route, key, Entry(body, True, stream_usage(body, messages)), limits))

    async def drain(self) -> None:
        """Finish the Redis writes in flight (at shutdown)."""
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)


class _Recording:
    """An ``UpstreamStream`` that copies what it relays, up to a limit, and hands the copy on at its end."""

    def __init__(self, stream: UpstreamStream, limit: int, on_whole: Callable[[bytes], None]) -> None:
        self._stream = stream
        self._limit = limit
        self._on_whole = on_whole

    async def chunks(self) -> AsyncIterator[bytes]:
        parts: list[bytes] | None = []
        size = 0
        async for data in self._stream.chunks():
            if parts is not None:
                size += len(data)
                if size > self._limit:
                    parts = None
                else:
                    parts.append(data)
            yield data
        if parts is not None:
            body = b"".join(parts)
            if _DONE in body[-64:]:
                self._on_whole(body)

    async def aclose(self) -> None:
        await self._stream.aclose()
