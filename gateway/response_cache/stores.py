"""Where cached answers live: Redis when configured (shared by replicas), else this process's memory.

An ``Entry`` is the upstream's answer as it came (a JSON body, or a stream's bytes) and the usage it was
paid for, which is what a hit saves. Redis holds entries as text with its own expiry; the process keeps
them per route in a least-recently-used map bounded in entries and bytes, with the expiry checked on read
against the gateway's clock. While Redis is down the process's map stands in, so a Redis outage costs
hits, never requests.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from gateway.accounting.usage import Usage
from policies import Cache, SharedState

if TYPE_CHECKING:  # redis-py loads only when a Redis URL is configured
    from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class Entry:
    """An answer as the upstream sent it: ``body`` is a JSON reply, or a stream's bytes when ``stream``."""

    body: bytes
    stream: bool
    usage: Usage

    def encode(self) -> str:
        """One text value: a JSON header line, then the body (upstream answers are UTF-8)."""
        usage = self.usage
        header = orjson.dumps([self.stream, usage.prompt_tokens, usage.completion_tokens, usage.estimated])
        return (header + b"\n" + self.body).decode()

    @classmethod
    def decode(cls, raw: str) -> Entry | None:
        """The entry ``encode`` wrote, or None for anything else (a value from another version)."""
        header, _, body = raw.encode().partition(b"\n")
        try:
            stream, prompt, completion, estimated = orjson.loads(header)
        except (orjson.JSONDecodeError, ValueError, TypeError):
            return None
        return cls(body, bool(stream), Usage(int(prompt), int(completion), bool(estimated)))


class MemoryStore:
    """One route's entries in this process: least recently used out past ``max_entries`` or ``max_bytes``."""

    def __init__(self, limits: Cache, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Entry]] = OrderedDict()
        self._bytes = 0

    def get(self, key: str) -> Entry | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, entry = found
        if self._clock() >= expires:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: Entry) -> None:
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self._clock() + self.limits.ttl_s, entry)
        self._bytes += len(entry.body)
        while len(self._entries) > self.limits.max_entries or self._bytes > self.limits.max_bytes:
            self._drop(next(iter(self._entries)))

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key: str) -> None:
        _, entry = self._entries.pop(key)
        self._bytes -= len(entry.body)


class RedisStore:
    """Entries in Redis under the deployment's prefix, each expiring after its route's ``ttl_s``."""

    def __init__(self, shared: SharedState) -> None:
        self._shared = shared

    @property
    def enabled(self) -> bool:
        return self._shared.enabled

    async def get(self, key: str) -> tuple[Entry | None] | None:
        """``(entry or None,)``, or None when Redis could not be asked."""
        async def read(client: Redis) -> tuple[str | None]:
            raw = await client.get(self._shared.key("cache", key))
            return (raw.decode() if isinstance(raw, bytes) else raw,)

        found = await self._shared.run(read)
        if found is None:
            return None
        raw = found[0]
        return (Entry.decode(raw) if raw is not None else None,)

    async def put(self, key: str, entry: Entry, ttl_s: float) -> bool:
        """True when Redis took it."""
        async def write(client: Redis) -> bool:
            await client.set(self._shared.key("cache", key), entry.encode(), ex=max(math.ceil(ttl_s), 1))
            return True

        return await self._shared.run(write) is not None
