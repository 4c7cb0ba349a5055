"""The keys' windows and spend in Redis, shared by every replica; each replica on its own while Redis is down.

Admission is one Lua script per request (``_ADMIT``): it drops the entries that left the key's window,
judges the request by the rule of ``gateway.keys.windows`` against the window and the month's spend, and
enters it when admitted, all atomically, so concurrent replicas can never admit more than the limits
between them. A key's window is a sorted set of ``<request id>|<tokens>`` scored by admission time, beside
the sum of its tokens; the spend is one hash per month (``keys:spend:YYYY-MM``, key name -> USD). Times are
the replicas' clocks (skew of milliseconds is nothing next to a minute).

Settlements (real tokens, cost) are written off the request path in batches (``_SETTLE``), each claiming
its request id first (``SET NX``), so a batch written again after an outage never counts twice.

Redis down fails open to each replica's own limits: the limits are enforced per replica
(``SlidingWindows``), so N replicas admit up to N times a key's rate until Redis returns, and budgets are
judged on the last spend Redis reported plus what this replica spent since. Each such decision is counted
in ``gateway_key_limit_local_decisions_total``; /readyz reports Redis ``degraded`` as for every shared use.
Settlements wait in a bounded journal and are replayed when Redis returns; the local windows are then
dropped, Redis' being the truth again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.api_keys import ApiKey
from gateway.keys.windows import WINDOW_S, SlidingWindows, Standing, Verdict, month_of
from policies import Script, SharedState

log = logging.getLogger("hybrid_gateway.keys")
CLAIM_TTL_S = 86_400
SPEND_TTL_S = 62 * 86_400  # a month's spend outlives the month by one more
JOURNAL_LIMIT = 100_000
BATCH_LIMIT = 500
_VERDICTS: dict[str, Verdict] = {v: v for v in ("admitted", "requests", "tokens", "too_large", "budget")}

# KEYS: the key's window (sorted set), its tokens' sum, the month's spend hash.
# ARGV: now, window seconds, rpm (0: none), tpm (0: none), budget (-1: none), tokens asked, request id, key name.
_ADMIT = Script("""
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local rpm, tpm, budget, need = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local function tokens_of(member) return tonumber(string.match(member, '|(%-?%d+)$')) end
local tokens = tonumber(redis.call('GET', KEYS[2]) or '0')
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - window)
if #expired > 0 then
  for _, member in ipairs(expired) do tokens = tokens - tokens_of(member) end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  redis.call('SET', KEYS[2], tokens)
end
local requests = redis.call('ZCARD', KEYS[1])
local spent = redis.call('HGET', KEYS[3], ARGV[8]) or '0'
local verdict = 'admitted'
if budget >= 0 and tonumber(spent) >= budget then verdict = 'budget'
elseif tpm > 0 and need > tpm then verdict = 'too_large'
elseif rpm > 0 and requests + 1 > rpm then verdict = 'requests'
elseif tpm > 0 and tokens + need > tpm then verdict = 'tokens' end
local retry = 0
if verdict == 'admitted' and (rpm > 0 or tpm > 0) then
  redis.call('ZADD', KEYS[1], now, ARGV[7] .. '|' .. ARGV[6])
  requests, tokens = requests + 1, tokens + need
  redis.call('SET', KEYS[2], tokens)
elseif verdict == 'requests' or verdict == 'tokens' then
  local may_requests = requests
  if rpm > 0 then may_requests = rpm - 1 end
  local may_tokens = tokens
  if tpm > 0 then may_tokens = tpm - need end
  local left, freed = requests, 0
  local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  for i = 1, #entries, 2 do
    if left <= may_requests and tokens - freed <= may_tokens then break end
    retry = tonumber(entries[i + 1]) + window - now
    freed, left = freed + tokens_of(entries[i]), left - 1
  end
end
local reset = 0
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #newest > 0 then reset = tonumber(newest[2]) + window - now end
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
redis.call('PEXPIRE', KEYS[2], math.ceil(window * 1000) + 1000)
return {verdict, requests, tokens, spent, tostring(math.max(retry, 0)), tostring(math.max(reset, 0))}
""")

# ARGV: claim TTL, spend TTL, the key prefix, then per settlement: request id, key name, month, tokens reserved
# (-1: not in a window), tokens used, cost.
_SETTLE = Script("""
local settled = 0
for i = 4, #ARGV, 6 do
  local id, name = ARGV[i], ARGV[i + 1]
  if redis.call('SET', ARGV[3] .. 'settled:' .. id, '1', 'NX', 'EX', ARGV[1]) then
    settled = settled + 1
    if tonumber(ARGV[i + 5]) > 0 then
      local spend = ARGV[3] .. 'spend:' .. ARGV[i + 2]
      redis.call('HINCRBYFLOAT', spend, name, ARGV[i + 5])
      redis.call('EXPIRE', spend, ARGV[2])
    end
    local reserved, used = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
    if reserved >= 0 and reserved ~= used then
      local window = ARGV[3] .. 'window:' .. name
      local at = redis.call('ZSCORE', window, id .. '|' .. ARGV[i + 3])
      if at then
        redis.call('ZREM', window, id .. '|' .. ARGV[i + 3])
        redis.call('ZADD', window, at, id .. '|' .. ARGV[i + 4])
        redis.call('INCRBY', ARGV[3] .. 'tokens:' .. name, used - reserved)
      end
    end
  end
end
return settled
""")


@dataclass(frozen=True, slots=True)
class _Settlement:
    request_id: str
    name: str
    month: str
    reserved: int | None
    used: int
    cost_usd: float

    def args(self) -> list[Any]:
        return [self.request_id, self.name, self.month, -1 if self.reserved is None else self.reserved, self.used,
                repr(self.cost_usd)]


class RedisCounters:
    """``KeyCounters`` in Redis; ``on_local`` is called for each decision made locally (Redis down)."""

    def __init__(self, shared: SharedState, on_local: Callable[[], None]) -> None:
        self._shared = shared
        self._on_local = on_local
        self._local = SlidingWindows()
        self._known: dict[str, tuple[str, float]] = {}  # key name -> (month, spend) as Redis last reported it
        self._spent_locally: dict[tuple[str, str], float] = {}  # settled while Redis was down
        self._queue: list[_Settlement] = []
        self._journal: deque[_Settlement] = deque(maxlen=JOURNAL_LIMIT)
        self._writer: asyncio.Task[None] | None = None
        shared.on_resync(self._resync)

    def _key(self, *parts: str) -> str:
        return self._shared.key("keys", *parts)

    async def admit(self, key: ApiKey, request_id: str, need: int, now: float) -> Standing:
        month = month_of(now)
        keys = [self._key("window", key.name), self._key("tokens", key.name), self._key("spend", month)]
        budget = key.monthly_budget_usd
        args = [repr(now), repr(WINDOW_S), key.rpm or 0, key.tpm or 0, -1 if budget is None else repr(budget), need,
                request_id, key.name]
        found = await self._shared.run(lambda client: _ADMIT(client, keys, args))
        if found is None:
            self._on_local()
            return self._local.admit(key, request_id, need, self._spent(key.name, month), now)
        verdict, requests, tokens, spent, retry_s, reset_s = found
        self._known[key.name] = (month, float(spent))
        return Standing(_VERDICTS[verdict], int(requests), int(tokens), float(spent), float(reset_s), float(retry_s))

    def _spent(self, name: str, month: str) -> float:
        known_month, known = self._known.get(name, (month, 0.0))
        return (known if known_month == month else 0.0) + self._spent_locally.get((month, name), 0.0)

    def settle(self, name: str, request_id: str, reserved: int | None, used: int, cost_usd: float,
               now: float) -> None:
        if reserved is None and not cost_usd:
            return
        self._queue.append(_Settlement(request_id, name, month_of(now), reserved, used, cost_usd))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_queued())

    async def _write_queued(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:BATCH_LIMIT], self._queue[BATCH_LIMIT:]
            if not await self._write(batch):
                self._hold(batch)

    async def _write(self, batch: list[_Settlement]) -> bool:
        args: list[Any] = [CLAIM_TTL_S, SPEND_TTL_S, self._key("")]
        for settlement in batch:
            args += settlement.args()
        return await self._shared.run(lambda client: _SETTLE(client, [], args)) is not None

    def _hold(self, batch: list[_Settlement]) -> None:
        """Settlements Redis did not take: counted in this replica's own state, journalled for Redis."""
        if len(self._journal) + len(batch) > JOURNAL_LIMIT:
            log.error("key settlements journal full while Redis is down: dropping the %d oldest",
                      len(self._journal) + len(batch) - JOURNAL_LIMIT)
        for settlement in batch:
            if settlement.reserved is not None:
                self._local.settle(settlement.name, settlement.request_id, settlement.used)
            slot = (settlement.month, settlement.name)
            self._spent_locally[slot] = self._spent_locally.get(slot, 0.0) + settlement.cost_usd
        self._journal.extend(batch)

    async def _resync(self) -> None:
        """Redis is back: write the journal (claims keep it exactly once), then drop this replica's own state."""
        while self._journal:
            batch = [self._journal.popleft() for _ in range(min(BATCH_LIMIT, len(self._journal)))]
            if not await self._write(batch):
                self._journal.extendleft(reversed(batch))
                return
        self._local.clear()
        self._spent_locally.clear()

    async def aclose(self) -> None:
        while self._writer is not None and not self._writer.done():
            await asyncio.gather(self._writer, return_exceptions=True)

