"""The embedded default's traffic window, persisted in SQLite under the data directory.

Without Redis a restart must not forget the evidence behind the break-even,
so the window's buckets live in ``<data_dir>/economics.sqlite3``. The hot
path only updates this process's in-memory buckets; a background task
flushes them every :data:`FLUSH_INTERVAL_S` (and on shutdown, and before
each read) as one transaction of ``+=`` upserts. Each process hands a batch
over exactly once (drained, then written, or merged back if the write
failed), and SQLite's file locking serialises the transactions, so several
uvicorn workers on one data directory add up without losing or doubling a
request. A process that dies loses at most its last unflushed second, which
its Prometheus counters still hold. A file that cannot be written or read
(full disk, corruption) never fails a request: flushes keep their counts for
the next try, logged once per outage, and ``/v1/economics`` answers 503 naming
the file until it is readable again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from gateway.accounting.completion import Completion
from gateway.accounting.traffic_window import Counts, Grid, Key, MemoryBuckets, Window, rows_of, window_of
from gateway.errors import ServiceUnavailable

log = logging.getLogger("hybrid_gateway.economics")
FLUSH_INTERVAL_S = 1.0
FILENAME = "economics.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    width REAL NOT NULL, bucket INTEGER NOT NULL, route TEXT NOT NULL, arm TEXT NOT NULL,
    requests REAL NOT NULL, cost_usd REAL NOT NULL, input_tokens REAL NOT NULL, output_tokens REAL NOT NULL,
    routed_cost_usd REAL NOT NULL,
    PRIMARY KEY (width, bucket, route, arm));
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value REAL NOT NULL);
"""
_UPSERT = """
INSERT INTO buckets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (width, bucket, route, arm) DO UPDATE SET
    requests = requests + excluded.requests, cost_usd = cost_usd + excluded.cost_usd,
    input_tokens = input_tokens + excluded.input_tokens, output_tokens = output_tokens + excluded.output_tokens,
    routed_cost_usd = routed_cost_usd + excluded.routed_cost_usd
"""
_ROUTED_COLUMN = (  # a file written before cascades: every request it counted was routed, at its own cost
    "ALTER TABLE buckets ADD COLUMN routed_cost_usd REAL NOT NULL DEFAULT 0",
    "UPDATE buckets SET routed_cost_usd = cost_usd",
)
_SINCE = "INSERT INTO meta VALUES ('since', ?) ON CONFLICT (name) DO UPDATE SET value = min(value, excluded.value)"


def _add_routed_column(db: sqlite3.Connection) -> None:
    """Bring a file from before ``routed_cost_usd`` up to date, in one transaction; another worker may have
    just done it (its ALTER then fails here as a duplicate column, and the column is there)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(buckets)")}
    if "routed_cost_usd" in columns:
        return
    try:
        with db:
            for statement in _ROUTED_COLUMN:
                db.execute(statement)
    except sqlite3.OperationalError:
        if "routed_cost_usd" not in {row[1] for row in db.execute("PRAGMA table_info(buckets)")}:
            raise


class SqliteWindowStore:
    """A :class:`gateway.accounting.traffic_window.WindowStore` on one SQLite file shared by this machine's workers."""

    def __init__(self, data_dir: Path, window_s: float, clock: Callable[[], float] = time.time) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / FILENAME
        self.grid = Grid(window_s)
        self._clock = clock
        self._pending = MemoryBuckets(self.grid)
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._ready = False  # the schema exists (made on first use, so a bad file cannot stop the gateway)
        self._failing = False

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        if not self._ready:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
                _add_routed_column(db)
            except sqlite3.Error:
                db.close()
                raise
            self._ready = True
        return db

    def __call__(self, done: Completion) -> None:
        if done.status != 200:
            return
        now = self._clock()
        for labels, values in rows_of(done):
            self._pending.add(now, *labels[:2], values)
        if self._task is None:  # the first request starts the background flush, on the serving loop
            self._task = asyncio.get_running_loop().create_task(self._flush_forever(), name="economics-flush")

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            await self.flush()

    async def flush(self) -> None:
        """Write what this process counted since the last flush, once."""
        async with self._lock:
            rows, since = self._pending.drain()
            if not rows:
                return
            try:
                await asyncio.to_thread(self._write, rows, since)
            except sqlite3.Error as exc:
                if not self._failing:
                    log.error("economics window: cannot write %s (%s); keeping the counts until it can",
                              self.path, exc)
                self._failing = True
                self._pending.merge(rows, since)
                return
            if self._failing:
                log.info("economics window: %s is writable again", self.path)
            self._failing = False

    def _write(self, rows: dict[Key, Counts], since: float | None) -> None:
        width = self.grid.width_s
        with contextlib.closing(self._connect()) as db, db:
            db.executemany(_UPSERT, [(width, bucket, route, arm, *counts.values())
                                     for (bucket, route, arm), counts in rows.items()])
            if since is not None:
                db.execute(_SINCE, (since,))
            db.execute("DELETE FROM buckets WHERE width = ? AND bucket < ?",
                       (width, self.grid.first(self._clock())))

    async def window(self) -> Window:
        await self.flush()
        now = self._clock()
        try:
            rows, since = await asyncio.to_thread(self._read, now)
        except sqlite3.Error as exc:
            raise ServiceUnavailable(f"The economics window cannot be read from {self.path}: {exc}.") from exc
        return window_of(self.grid, now, since, "data_dir", rows)

    def _read(self, now: float) -> tuple[dict[Key, Counts], float | None]:
        with contextlib.closing(self._connect()) as db:
            found = db.execute("SELECT bucket, route, arm, requests, cost_usd, input_tokens, output_tokens, "
                               "routed_cost_usd "
                               "FROM buckets WHERE width = ? AND bucket >= ?",
                               (self.grid.width_s, self.grid.first(now))).fetchall()
            since = db.execute("SELECT value FROM meta WHERE name = 'since'").fetchone()
        rows = {(int(b), r, a): Counts(*values) for b, r, a, *values in found}
        return rows, (float(since[0]) if since else None)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
