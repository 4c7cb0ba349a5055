"""Cluster-wide totals in Redis: requests, tokens and cost per route/arm/target/variant, once per request.

Prometheus counters are per process; this ledger gives every replica (and the
built-in views) the cluster's totals. Each successful request is added by one
Lua script that first claims the request id (``SET NX`` with a TTL), so a
retried write can never count it twice. While Redis is down, entries wait in
a bounded in-memory journal and are replayed when it returns; a replica that
dies during an outage loses only its own unreplayed entries, which its
Prometheus counters still hold.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from gateway.ledger import RequestRecord
from policies import Script, SharedState

log = logging.getLogger("hybrid_gateway.ledger")
FIELDS = ("requests", "input_tokens", "output_tokens", "cost_usd", "counterfactual_usd")
SEEN_TTL_S = 7 * 86_400
JOURNAL_LIMIT = 100_000

_ADD = Script("""
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
redis.call('SET', KEYS[3], ARGV[3], 'NX')
for i = 4, #ARGV, 2 do redis.call('HINCRBYFLOAT', KEYS[2], ARGV[2] .. '|' .. ARGV[i], ARGV[i + 1]) end
return 1
""")


def _entry(record: RequestRecord) -> tuple[str, str, list[float]]:
    usage = record.usage
    values = [1.0, float(usage.prompt_tokens if usage else 0), float(usage.completion_tokens if usage else 0),
              record.cost_usd or 0.0, record.counterfactual_usd or 0.0]
    return record.request_id, "|".join(record.labels()), values


class ClusterLedger:
    """A ledger hook; ``totals`` reads the cluster's sums back."""

    def __init__(self, shared: SharedState) -> None:
        self._shared = shared
        self._journal: deque[tuple[str, str, list[float]]] = deque(maxlen=JOURNAL_LIMIT)
        self._pending: set[asyncio.Task[None]] = set()
        shared.on_resync(self.replay)

    def __call__(self, record: RequestRecord) -> None:
        if record.status != 200:
            return
        task = asyncio.get_running_loop().create_task(self._write(_entry(record)))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, entry: tuple[str, str, list[float]]) -> None:
        request_id, labels, values = entry
        args: list[Any] = [SEEN_TTL_S, labels, time.time()]
        for name, value in zip(FIELDS, values, strict=True):
            args += [name, value]
        keys = [self._shared.key("ledger", "seen", request_id), self._shared.key("ledger", "totals"),
                self._shared.key("ledger", "since")]
        done = await self._shared.run(lambda client: _ADD(client, keys, args))
        if done is None:
            if len(self._journal) == self._journal.maxlen:
                log.error("cluster ledger journal full while Redis is down: dropping the oldest entry")
            self._journal.append(entry)

    async def replay(self) -> None:
        """Write what waited during an outage; the request-id claim keeps it exactly once."""
        while self._journal:
            entry = self._journal.popleft()
            await self._write(entry)
            if not self._shared.available:
                return

    async def totals(self) -> tuple[float, list[dict[str, Any]]] | None:
        """(first write's epoch seconds, one row per label set), or None without Redis."""
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
        return (float(since) if since else time.time()), list(rows.values())

    async def drain(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
