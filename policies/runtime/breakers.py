"""Circuit breakers per target, in process or shared by every replica through Redis.

A breaker is closed until ``failures`` failures fall within ``window_s`` (a sliding
window of failure timestamps, so a steady trickle of old failures never opens it).
Then it is open for ``cooldown_s``: ``allow`` answers False and the gateway falls
back without touching the target. After the cooldown it is half-open: exactly
``half_open_probes`` calls go through; one failing probe re-opens it for another
cooldown, ``half_open_probes`` successes close it. A probe round that never
reports (a cancelled request) would keep the breaker half-open and shut forever,
so a new round of probes is admitted after another ``cooldown_s``.

Results of calls admitted before the breaker opened and finishing while it is open
are ignored: they say nothing about the target after the cooldown.

``SharedBreakers`` keeps the same state machine in Redis so all replicas open,
probe and close together (N replicas do not each hammer a dead target with
``failures`` calls and their own probes). Each transition is one Lua script, so
concurrent replicas cannot both take the last probe. Timestamps are the replicas'
wall clocks; skew of a few milliseconds is irrelevant next to windows of seconds.
While Redis is down each replica uses its own ``LocalBreakers``, which is reset
when Redis returns so an outage's stale local state does not leak into the next.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from policies.runtime.shared_state import Script, SharedState
from policies.schema import Breaker

BreakerState = Literal["closed", "open", "half_open"]
Clock = Callable[[], float]

# An idle open breaker's Redis state outlives its cooldown by this much, then expires (closed).
_STATE_KEEP_S = 3600.0


class BreakerBoard(Protocol):
    """The breakers of all targets, as the gateway's attempt loop sees them."""

    async def allow(self, target: str, config: Breaker) -> bool:
        """False while ``target``'s breaker is open (or its half-open probes are taken)."""
        ...

    async def record(self, target: str, config: Breaker, ok: bool) -> None:
        """The outcome of a call that ``allow`` let through."""
        ...

    def states(self) -> dict[str, str]:
        """Last known state per target, for metrics."""
        ...


@dataclass
class _Circuit:
    failures: deque[float] = field(default_factory=deque)
    open_until: float | None = None
    probe_round: float | None = None
    admitted: int = 0
    successes: int = 0

    def state(self, now: float) -> BreakerState:
        if self.open_until is None:
            return "closed"
        return "open" if now < self.open_until else "half_open"

    def open(self, now: float, config: Breaker) -> None:
        self.failures.clear()
        self.open_until = now + config.cooldown_s
        self.probe_round = None
        self.admitted = self.successes = 0


class LocalBreakers:
    """Breakers in this process only: the board without Redis, and ``SharedBreakers``' fallback."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}

    async def allow(self, target: str, config: Breaker) -> bool:
        circuit = self._circuits.setdefault(target, _Circuit())
        now = self._clock()
        state = circuit.state(now)
        if state == "closed":
            return True
        if state == "open":
            return False
        if circuit.probe_round is None or now - circuit.probe_round >= config.cooldown_s:
            circuit.probe_round, circuit.admitted, circuit.successes = now, 0, 0
        if circuit.admitted >= config.half_open_probes:
            return False
        circuit.admitted += 1
        return True

    async def record(self, target: str, config: Breaker, ok: bool) -> None:
        circuit = self._circuits.setdefault(target, _Circuit())
        now = self._clock()
        state = circuit.state(now)
        if state == "open":
            return
        if state == "half_open":
            if not ok:
                circuit.open(now, config)
                return
            circuit.successes += 1
            if circuit.successes >= config.half_open_probes:
                self._circuits[target] = _Circuit()
            return
        if ok:
            return
        circuit.failures.append(now)
        while circuit.failures and circuit.failures[0] < now - config.window_s:
            circuit.failures.popleft()
        if len(circuit.failures) >= config.failures:
            circuit.open(now, config)

    def states(self) -> dict[str, str]:
        now = self._clock()
        return {target: circuit.state(now) for target, circuit in self._circuits.items()}

    def reset(self) -> None:
        """Forget every circuit (after an outage, when Redis is the truth again)."""
        self._circuits.clear()


# KEYS: state hash. ARGV: now, cooldown_s, half_open_probes, keep_ms. Returns {allowed, state}.
_ALLOW = Script("""
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until'))
if not open_until then return {1, 'closed'} end
local now = tonumber(ARGV[1])
if now < open_until then return {0, 'open'} end
local round = tonumber(redis.call('HGET', KEYS[1], 'round'))
if (not round) or now - round >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'round', ARGV[1], 'admitted', 0, 'successes', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
if tonumber(redis.call('HGET', KEYS[1], 'admitted')) >= tonumber(ARGV[3]) then return {0, 'half_open'} end
redis.call('HINCRBY', KEYS[1], 'admitted', 1)
return {1, 'half_open'}
""")

# KEYS: state hash, failure zset. ARGV: now, ok (1/0), failures, window cutoff, open_until,
# half_open_probes, member, window_ms, keep_ms. Returns the state after recording.
_RECORD = Script("""
local now = tonumber(ARGV[1])
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until'))
if open_until then
  if now < open_until then return 'open' end
  if ARGV[2] == '0' then
    redis.call('DEL', KEYS[1], KEYS[2])
    redis.call('HSET', KEYS[1], 'open_until', ARGV[5])
    redis.call('PEXPIRE', KEYS[1], ARGV[9])
    return 'open'
  end
  if redis.call('HINCRBY', KEYS[1], 'successes', 1) >= tonumber(ARGV[6]) then
    redis.call('DEL', KEYS[1], KEYS[2])
    return 'closed'
  end
  return 'half_open'
end
if ARGV[2] == '1' then return 'closed' end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[8])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'open_until', ARGV[5])
  redis.call('PEXPIRE', KEYS[1], ARGV[9])
  return 'open'
end
return 'closed'
""")


class SharedBreakers:
    """Breakers kept in Redis, so every replica sees one state per target.

    Keys per target (the braces keep both in one Redis Cluster slot for the scripts):
    ``{prefix}breaker:{<target>}:state`` a hash (open_until, round, admitted, successes)
    and ``{prefix}breaker:{<target>}:failures`` a sorted set of failure timestamps.
    """

    def __init__(self, state: SharedState, clock: Clock = time.time) -> None:
        self._state = state
        self._clock = clock
        self._local = LocalBreakers(clock)
        self._last: dict[str, str] = {}
        state.on_resync(self._forget_local)

    async def allow(self, target: str, config: Breaker) -> bool:
        now = self._clock()
        args = (repr(now), repr(config.cooldown_s), config.half_open_probes, _keep_ms(config))
        reply = await self._state.run(lambda r: _ALLOW(r, [self._key(target, "state")], args))
        if reply is None:
            allowed = await self._local.allow(target, config)
            self._last[target] = self._local.states()[target]
            return allowed
        allowed, state = reply
        self._last[target] = state
        return bool(int(allowed))

    async def record(self, target: str, config: Breaker, ok: bool) -> None:
        now = self._clock()
        keys = [self._key(target, "state"), self._key(target, "failures")]
        args = (repr(now), "1" if ok else "0", config.failures, repr(now - config.window_s),
                repr(now + config.cooldown_s), config.half_open_probes, f"{now!r}:{uuid.uuid4().hex}",
                max(1, int(config.window_s * 1000)), _keep_ms(config))
        state = await self._state.run(lambda r: _RECORD(r, keys, args))
        if state is None:
            await self._local.record(target, config, ok)
            self._last[target] = self._local.states()[target]
            return
        self._last[target] = state

    def states(self) -> dict[str, str]:
        return dict(self._last)

    def _key(self, target: str, part: str) -> str:
        return self._state.key("breaker", "{" + target + "}", part)

    async def _forget_local(self) -> None:
        self._local.reset()


def _keep_ms(config: Breaker) -> int:
    return int((config.cooldown_s + config.window_s + _STATE_KEEP_S) * 1000)


def breaker_board(state: SharedState, clock: Clock = time.time) -> BreakerBoard:
    """Shared breakers when a Redis URL is configured, in-process ones otherwise."""
    return SharedBreakers(state, clock) if state.enabled else LocalBreakers(clock)
