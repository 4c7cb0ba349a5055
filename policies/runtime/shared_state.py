"""Redis as optional shared state, and what the gateway does while it is gone.

Replicas share breaker state and the outcome record through Redis when one is
configured. Redis is never on the critical path: every call goes through
``SharedState.run``, which turns any Redis or socket error into ``None`` so the
caller falls back to its local state. The first failure marks Redis down (one log
line and one ``on_change(False)`` per outage, not one per call); while it is down
no request waits on a dead socket, and at most one PING per ``retry_interval_s``
checks whether it is back. When it is, ``on_change(True)`` fires and the
registered resync callbacks push what was written locally meanwhile.

The re-probe is driven by calls (and ``probe()``), not by a sleeping loop: an idle
gateway does not need to know, and tests can drive it deterministically.

The client uses ``BlockingConnectionPool`` because redis-py's plain async pool
raises as soon as ``max_connections`` are in use; the blocking pool waits up to
the operation timeout instead (a pool still exhausted after that counts as an
outage: a Redis that slow is no help on the request path). redis-py's default retry policy (exponential
backoff with several retries) would stall requests for seconds during an
outage, so it is replaced by one immediate retry on connection errors, which is
enough to replace a pooled connection that a Redis restart closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # redis-py (8-12 MB with what it pulls in) loads only when a Redis URL is configured
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

log = logging.getLogger("hybrid_gateway.policies")

T = TypeVar("T")
Resync = Callable[[], Awaitable[None]]



class SharedState:
    """One per process: the Redis client (or none), whether it answers, and the outage bookkeeping.

    ``available`` starts optimistic when a URL is given; the first failing call (or
    ``await probe()`` at start-up) corrects it. Replies are decoded to ``str``. ``failures`` counts every Redis call
    that failed, ``outages`` every transition to down.
    """

    def __init__(
        self,
        client: Redis | None,
        *,
        prefix: str = "hg:",
        on_change: Callable[[bool], None] | None = None,
        retry_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._failures: tuple[type[BaseException], ...] = (OSError,)
        if client is not None:
            from redis.exceptions import RedisError

            # Everything that means "Redis did not answer properly": redis-py's own errors and raw
            # socket errors (TimeoutError is an OSError since Python 3.11).
            self._failures = (RedisError, OSError)
        self.prefix = prefix
        self.retry_interval_s = retry_interval_s
        self._on_change = on_change
        self._clock = clock
        self.available = client is not None
        self.reached = False  # whether Redis has answered at least once since start
        self.failures = 0
        self.outages = 0
        self._down_since = 0.0
        self._last_probe = float("-inf")
        self._probe_task: asyncio.Task[bool] | None = None
        self._probe_lock = asyncio.Lock()
        self._resync: list[Resync] = []

    @classmethod
    def connect(
        cls,
        url: str | None,
        *,
        prefix: str = "hg:",
        on_change: Callable[[bool], None] | None = None,
        max_connections: int = 50,
        timeout_s: float = 0.5,
        retry_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> SharedState:
        """Build the state for ``url`` (None: local only). No I/O happens here."""
        if url is None:
            return cls(None, prefix=prefix, on_change=on_change, retry_interval_s=retry_interval_s, clock=clock)
        from redis.asyncio import BlockingConnectionPool, Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError

        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            decode_responses=True,
        )
        return cls(Redis.from_pool(pool), prefix=prefix, on_change=on_change,
                   retry_interval_s=retry_interval_s, clock=clock)

    @property
    def enabled(self) -> bool:
        """Whether a Redis URL was configured at all (as opposed to currently reachable)."""
        return self._client is not None

    @property
    def pending_probe(self) -> asyncio.Task[bool] | None:
        """The background re-probe started by a call while Redis is down, if one is running."""
        task = self._probe_task
        return task if task is not None and not task.done() else None

    def key(self, *parts: str) -> str:
        """A Redis key under this deployment's prefix, so several gateways can share one Redis."""
        return self.prefix + ":".join(parts)

    def on_resync(self, callback: Resync) -> None:
        """Run ``callback`` each time Redis comes back; it should use ``run`` and tolerate a new outage."""
        self._resync.append(callback)

    async def run(self, op: Callable[[Redis], Awaitable[T]]) -> T | None:
        """``await op(client)``, or None when Redis is not configured, down, or fails now.

        A None result always means "use local state"; an op that needs to tell an
        empty answer from a failure should wrap its result (e.g. in a tuple).
        Errors that are not Redis or socket errors are bugs and propagate.
        """
        client = self._client
        if client is None:
            return None
        if not self.available:
            self._probe_in_background()
            return None
        try:
            result = await op(client)
        except self._failures as exc:
            self.failures += 1
            self._mark_down(exc)
            return None
        self.reached = True
        return result

    async def probe(self) -> bool:
        """PING now; after an outage a success marks Redis up and runs the resync callbacks."""
        client = self._client
        if client is None:
            return False
        async with self._probe_lock:
            self._last_probe = self._clock()
            try:
                await client.ping()
            except self._failures as exc:
                self.failures += 1
                self._mark_down(exc)
                return False
            self.reached = True
            if not self.available:
                self._mark_up()
                await self._run_resync()
            return True

    async def aclose(self) -> None:
        """Stop a pending probe and close the pool."""
        task = self._probe_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    def _probe_in_background(self) -> None:
        if self.pending_probe is not None or self._clock() - self._last_probe < self.retry_interval_s:
            return
        self._last_probe = self._clock()
        self._probe_task = asyncio.get_running_loop().create_task(self.probe(), name="shared-state-probe")

    def _mark_down(self, exc: BaseException) -> None:
        if not self.available:
            return
        self.available = False
        self.outages += 1
        self._down_since = self._clock()
        self._last_probe = self._down_since
        log.warning("redis unavailable, serving from local state until it returns: %s: %s",
                    type(exc).__name__, exc)
        if self._on_change is not None:
            self._on_change(False)

    def _mark_up(self) -> None:
        self.available = True
        log.warning("redis available again after %.1f s; resyncing local state", self._clock() - self._down_since)
        if self._on_change is not None:
            self._on_change(True)

    async def _run_resync(self) -> None:
        for callback in self._resync:
            # The probe usually runs as a background task nobody awaits: one subscriber's
            # bug must neither vanish silently nor stop the others from resyncing.
            try:
                await callback()
            except Exception:
                log.exception("resync callback %r failed", callback)


class Script:
    """A Lua script declared as a module constant and run through redis-py's ``register_script``.

    redis-py's ``AsyncScript`` is bound to a client, but the scripts are declared at import, before
    any client exists, and called inside ``SharedState.run`` with the client it hands out. So the
    first call registers the source on that client (kept: a process has one) and redis-py runs it
    by EVALSHA, loading it again when a Redis restart or ``SCRIPT FLUSH`` emptied the server's
    script cache.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._registered: AsyncScript | None = None

    async def __call__(self, client: Redis, keys: Sequence[str], args: Sequence[Any]) -> Any:
        script = self._registered
        if script is None or script.registered_client is not client:
            script = self._registered = client.register_script(self.source)
        return await script(keys, args)
