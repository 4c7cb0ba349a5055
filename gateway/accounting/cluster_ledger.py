"""Cluster-wide totals in Redis, once per request: all-time per label set, and the economics window per route/arm.

Prometheus counters are per process; this ledger gives every replica (and the
built-in views) the cluster's totals. Requests are written in batches by one
background writer (the hot path only appends to a list), each batch by one
Lua script that claims every request id first (``SET NX`` with a TTL), so a
retried write can never count a request twice: the gateway's own id, since a
client's ``x-request-id`` may be shared by many requests. Besides the all-time totals
(``GET /v1/ledger``) the script adds each request to its time bucket of the
economics window (:mod:`gateway.accounting.traffic_window`), which expires once it has
left the window: the live break-even then survives restarts and sees every
replica. While Redis is down, entries wait in a bounded in-memory journal and
are replayed when it returns; a replica that dies during an outage loses only
its own unreplayed entries, which its Prometheus counters still hold. Until
Redis returns, the window is this process's own (scope ``process``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.accounting.completion import Completion
from gateway.accounting.traffic_window import (
    FIELDS,
    Counts,
    Grid,
    Key,
    MemoryBuckets,
    Values,
    Window,
    rows_of,
    window_of,
)
from policies import Script, SharedState

log = logging.getLogger("hybrid_gateway.ledger")
SEEN_TTL_S = 7 * 86_400
JOURNAL_LIMIT = 100_000
BATCH_LIMIT = 500
READ_WAIT_S = 1.0

# KEYS: totals hash, since. ARGV: seen TTL, seen-key prefix, bucket-key prefix, bucket TTL, then per entry
# request id, labels, epoch seconds, bucket, route|arm and one value per field of FIELDS.
_ADD = Script("""
local fields = {'""" + "', '".join(FIELDS) + """'}
local added = 0
for i = 5, #ARGV, 5 + #fields do
  if redis.call('SET', ARGV[2] .. ARGV[i], '1', 'NX', 'EX', ARGV[1]) then
    added = added + 1
    local since = redis.call('GET', KEYS[2])
    if not since or tonumber(ARGV[i + 2]) < tonumber(since) then redis.call('SET', KEYS[2], ARGV[i + 2]) end
    local bucket = ARGV[3] .. ARGV[i + 3]
    for f = 1, #fields do
      local value = ARGV[i + 4 + f]
      redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i + 1] .. '|' .. fields[f], value)
      redis.call('HINCRBYFLOAT', bucket, ARGV[i + 4] .. '|' .. fields[f], value)
    end
    redis.call('EXPIRE', bucket, ARGV[4])
  end
end
return added
""")


@dataclass(frozen=True)
class _Entry:
    request_id: str
    labels: tuple[str, str, str, str]
    at: float
    values: Values


class ClusterLedger:
    """A ledger hook; ``totals`` reads the cluster's all-time sums back, ``window`` the economics window."""

    def __init__(self, shared: SharedState, grid: Grid, clock: Callable[[], float] = time.time) -> None:
        self._shared = shared
        self.grid = grid
        self._clock = clock
        self._queue: list[_Entry] = []
        self._journal: deque[_Entry] = deque(maxlen=JOURNAL_LIMIT)
        self._writer: asyncio.Task[None] | None = None
        self._own = MemoryBuckets(grid)  # this process's share of the window, read only while Redis is down
        shared.on_resync(self.replay)

    def __call__(self, done: Completion) -> None:
        if done.status != 200:
            return
        now, request_id = self._clock(), done.arrival.request_id
        for n, (labels, values) in enumerate(rows_of(done)):  # a paid call's row: its own id, counted once too
            entry = _Entry(f"{request_id}/{n}" if n else request_id, labels, now, values)
            self._own.add(now, *labels[:2], values)
            self._queue.append(entry)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_queued())

    async def _write_queued(self) -> None:
        """Write what queued up while the previous batch was in flight, a batch at a time."""
        while self._queue:
            batch, self._queue = self._queue[:BATCH_LIMIT], self._queue[BATCH_LIMIT:]
            await self._write(batch)

    def _args(self, batch: list[_Entry]) -> list[Any]:
        args: list[Any] = [SEEN_TTL_S, self._shared.key("ledger", "seen", ""), self._bucket_key(""),
                           math.ceil(self.grid.window_s + 2 * self.grid.width_s)]
        for entry in batch:
            args += [entry.request_id, "|".join(entry.labels), entry.at, self.grid.bucket(entry.at),
                     "|".join(entry.labels[:2]), *entry.values]
        return args

    def _bucket_key(self, bucket: str) -> str:
        return self._shared.key("ledger", "window", f"{self.grid.width_s:g}", bucket)

    async def _write(self, batch: list[_Entry]) -> None:
        keys = [self._shared.key("ledger", "totals"), self._shared.key("ledger", "since")]
        args = self._args(batch)
        done = await self._shared.run(lambda client: _ADD(client, keys, args))
        if done is None:
            room = JOURNAL_LIMIT - len(self._journal)
            if room < len(batch):
                log.error("cluster ledger journal full while Redis is down: dropping the %d oldest entries",
                          len(batch) - room)
            self._journal.extend(batch)

    async def replay(self) -> None:
        """Write what waited during an outage; the request-id claim keeps it exactly once."""
        while self._journal:
            batch = [self._journal.popleft() for _ in range(min(BATCH_LIMIT, len(self._journal)))]
            await self._write(batch)
            if not self._shared.available:
                return

    async def totals(self) -> tuple[float, list[dict[str, Any]]] | None:
        """(first request's epoch seconds, one row per label set), or None without Redis."""
        async def read(client: Any) -> tuple[Any, dict[str, str]]:
            return (await client.get(self._shared.key("ledger", "since")),
                    await client.hgetall(self._shared.key("ledger", "totals")))
        found = await self._shared.run(read)
        if found is None:
            return None
        since, raw = found
        rows: dict[str, dict[str, Any]] = {}
        for key, value in raw.items():
            labels, _, name = key.rpartition("|")
            route, arm, target, variant = labels.split("|")
            row = rows.setdefault(labels, {"route": route, "arm": arm, "target": target, "variant": variant})
            row[name] = float(value)
        return (float(since) if since else self._clock()), list(rows.values())

    async def window(self) -> Window:
        """The cluster's economics window; this process's own while Redis is down."""
        if self._writer is not None and not self._writer.done():
            await asyncio.wait({self._writer}, timeout=READ_WAIT_S)  # this process's latest requests count
        now = self._clock()
        first, last = self.grid.first(now), self.grid.bucket(now)

        async def read(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            pipe.get(self._shared.key("ledger", "since"))
            for bucket in range(first, last + 1):
                pipe.hgetall(self._bucket_key(str(bucket)))
            return list(await pipe.execute())

        found = await self._shared.run(read)
        if found is None:
            self._own.prune(now)
            return window_of(self.grid, now, self._own.since, "process", self._own.rows)
        since, *hashes = found
        rows: dict[Key, Counts] = {}
        for bucket, raw in zip(range(first, last + 1), hashes, strict=True):
            values: dict[tuple[str, str], dict[str, float]] = {}
            for key, value in raw.items():
                route, arm, name = key.split("|")
                values.setdefault((route, arm), {})[name] = float(value)
            for (route, arm), named in values.items():
                named.setdefault("routed_cost_usd", named.get("cost_usd", 0.0))  # written before strategies
                rows[(bucket, route, arm)] = Counts(**named)
        return window_of(self.grid, now, float(since) if since else None, "cluster", rows)

    async def aclose(self) -> None:
        """Finish the batch in flight and whatever queued behind it."""
        while self._writer is not None and not self._writer.done():
            await asyncio.gather(self._writer, return_exceptions=True)
