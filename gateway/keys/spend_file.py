"""Each named key's spend per month, without Redis: in memory, persisted in SQLite under the data directory.

A budget a restart forgets is no budget, so the embedded default keeps the month's spend per key in
``<data_dir>/key_spend.sqlite3``. The hot path only adds to this process's pending sums; a background task
writes them every :data:`FLUSH_INTERVAL_S` (and on shutdown) as one transaction of ``+=`` upserts, then reads
the totals back, as it also does when a budget is judged on totals read longer ago than that: several
uvicorn workers on one data directory see each other's spend within about a second. A write that fails (full disk) keeps its sums for the next try, logged once per outage; a request
is never failed for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from pathlib import Path

log = logging.getLogger("hybrid_gateway.keys")
FLUSH_INTERVAL_S = 1.0
FILENAME = "key_spend.sqlite3"
Slot = tuple[str, str]  # (month, key name)

_SCHEMA = "CREATE TABLE IF NOT EXISTS spend (month TEXT NOT NULL, key TEXT NOT NULL, usd REAL NOT NULL, " \
          "PRIMARY KEY (month, key))"
_UPSERT = "INSERT INTO spend VALUES (?, ?, ?) ON CONFLICT (month, key) DO UPDATE SET usd = usd + excluded.usd"


class SpendFile:
    """``spent`` is the file's total as last read plus what this process has not written yet."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / FILENAME
        self._stored: dict[Slot, float] | None = None  # read on first use: a gateway without named keys never is
        self._read_at = 0.0  # time.monotonic() of the last read
        self._pending: dict[Slot, float] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._failing = False

    def spent(self, month: str, name: str) -> float:
        if self._stored is None:
            self._stored, self._read_at = self._read(), time.monotonic()
        elif time.monotonic() - self._read_at > FLUSH_INTERVAL_S and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.get_running_loop().create_task(self.flush())  # other workers' spend, soon
        slot = (month, name)
        return self._stored.get(slot, 0.0) + self._pending.get(slot, 0.0)

    def add(self, month: str, name: str, usd: float) -> None:
        slot = (month, name)
        self._pending[slot] = self._pending.get(slot, 0.0) + usd
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(FLUSH_INTERVAL_S)
        await self.flush()

    async def flush(self) -> None:
        """Write the pending sums once (merged back if the write fails), then read every total back."""
        batch, self._pending = self._pending, {}
        self._read_at = time.monotonic()  # one read at a time: a failing file is tried again a second later
        try:
            self._stored = await asyncio.to_thread(self._write, batch)
        except sqlite3.Error as exc:
            for slot, usd in batch.items():
                self._pending[slot] = self._pending.get(slot, 0.0) + usd
            if not self._failing:
                log.error("cannot write key spend to %s (kept in memory, tried again): %s", self.path, exc)
            self._failing = True
            return
        self._failing = False

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=5)
        connection.execute(_SCHEMA)
        return connection

    def _read(self) -> dict[Slot, float]:
        with contextlib.closing(self._connect()) as connection:
            return {(month, key): usd for month, key, usd in connection.execute("SELECT month, key, usd FROM spend")}

    def _write(self, batch: dict[Slot, float]) -> dict[Slot, float]:
        with contextlib.closing(self._connect()) as connection:
            with connection:
                connection.executemany(_UPSERT, [(month, key, usd) for (month, key), usd in batch.items()])
            return {(month, key): usd for month, key, usd in connection.execute("SELECT month, key, usd FROM spend")}

    async def aclose(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._pending:
            await self.flush()
