"""Replicas share one live score estimate through Redis, off the request path.

Each process publishes its own score slices (``routes.Slice``: counts, so they merge by addition)
and merges every other replica's, once per ``interval_s`` in a background task: a request never
waits on Redis. Per route and model (the sketch's namespace) Redis holds one string per slice,
``<prefix>calibration:<namespace>:<origin>:<seq>``, written whole each time (a retried write
cannot count twice) with a TTL of the time window, and a sorted set of slice names scored by
their last update, which is how a reader finds the newest slices and fetches only those that
changed since it last looked. A process deletes its own slices once newer ones of its own fill
the window, so Redis holds about 17 slices per replica and route.

Redis down: ``SharedState.run`` logs and counts the outage; each sketch forgets the other
replicas' slices (the estimate becomes this process's own: ``scope`` says "process") and
republishes all of its own slices when a sync succeeds again, as does a replica that finds its
own slices missing (Redis restarted empty while it was not looking).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gateway.pipeline.arm_choice import ArmChooser
from policies import SharedState
from routes import ScoreSketch, Slice

log = logging.getLogger("hybrid_gateway.calibration")
SYNC_INTERVAL_S = 1.0
READ_LIMIT = 1024  # slices read per namespace at most: ~17 per live replica, more only after crashes


class ScoreSharing:
    def __init__(self, shared: SharedState, chooser: ArmChooser, interval_s: float = SYNC_INTERVAL_S) -> None:
        self._shared = shared
        self._chooser = chooser
        self.interval_s = interval_s
        self._seen: dict[str, dict[str, tuple[float, Slice]]] = {}  # namespace -> name -> (updated, slice)
        self._republish: set[str] = set()  # namespaces whose last publication failed

    async def run(self) -> None:
        """Sync forever (cancelled at shutdown); one failing round never stops the next."""
        while True:
            try:
                await self.sync()
            except Exception:
                log.exception("score sharing round failed")
            await asyncio.sleep(self.interval_s)

    async def sync(self) -> None:
        """Publish what changed in each sketch, then merge the others' latest slices."""
        merged = True
        for namespace, sketch in self._chooser.sketches().items():
            merged = await self._sync(namespace, sketch) and merged
        self._chooser.scope = "cluster" if merged and self._shared.available else "process"

    async def _sync(self, namespace: str, sketch: ScoreSketch) -> bool:
        changed, dropped = sketch.changes(everything=namespace in self._republish)
        writes = [(piece.name, piece.ended, piece.encode()) for piece in changed]  # snapshots, taken now
        window_s = sketch.window.seconds
        ttl = int(window_s) + 60
        index = self._shared.key("calibration", namespace, "index")

        def slot(name: str) -> str:
            return self._shared.key("calibration", namespace, name)

        async def exchange(client: Any) -> list[tuple[str, float]]:
            oldest = sketch.now() - window_s
            pipe = client.pipeline(transaction=False)
            for name, updated, text in writes:
                pipe.set(slot(name), text, ex=ttl)
                pipe.zadd(index, {name: updated})
            if dropped:
                pipe.delete(*(slot(name) for name in dropped))
                pipe.zrem(index, *dropped)
            pipe.zremrangebyscore(index, "-inf", f"({oldest!r}")
            pipe.expire(index, ttl)
            pipe.zrevrangebyscore(index, "+inf", oldest, start=0, num=READ_LIMIT, withscores=True)
            listed: list[tuple[str, float]] = (await pipe.execute())[-1]
            return listed

        listed = await self._shared.run(exchange)
        if listed is None:
            self._republish.add(namespace)
            self._seen.pop(namespace, None)
            sketch.merge_remote(())
            return False
        # A Redis that restarted empty under a replica that never saw it go: its own slices are missing.
        written = {name for name, _, _ in writes}
        if sketch.own_names() - written - {name for name, _ in listed}:
            self._republish.add(namespace)
        else:
            self._republish.discard(namespace)
        others = await self._read(namespace, slot, [(n, u) for n, u in listed if not n.startswith(sketch.origin + ":")])
        if others is None:
            sketch.merge_remote(())
            return False
        sketch.merge_remote(others)
        return True

    async def _read(self, namespace: str, slot: Any, listed: list[tuple[str, float]]) -> list[Slice] | None:
        """The listed slices, fetching only those updated since the last read."""
        known = self._seen.get(namespace, {})
        stale = [name for name, updated in listed if name not in known or known[name][0] != updated]
        fetched: list[bytes | str | None] = []
        if stale:
            found = await self._shared.run(lambda client: client.mget([slot(name) for name in stale]))
            if found is None:
                self._seen.pop(namespace, None)
                return None
            fetched = found
        updated = dict(listed)
        fresh = dict(known)
        for name, text in zip(stale, fetched, strict=True):
            # None: expired between the listing and the read (never bytes: SharedState's client decodes)
            if not isinstance(text, str):
                continue
            try:
                piece = Slice.decode(text)
            except ValueError:
                log.warning("ignoring an unreadable score slice %s", slot(name))
                continue
            fresh[name] = (updated[name], piece)
        self._seen[namespace] = {name: entry for name, entry in fresh.items() if name in updated}
        return [piece for _, piece in self._seen[namespace].values()]
