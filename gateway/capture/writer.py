"""Store captured requests off the request path: a bounded queue in front of one writer thread.

``offer`` runs on the event loop for each captured request and never waits: it
puts the finished request's ``Captured`` fields in the queue, or, when the queue is full,
drops it and counts ``gateway_captures_total{result="queue_full"}``. The thread
takes batches, parses and redacts them (``capture_row``), and writes each batch in
one transaction, lingering up to ``linger_s`` after the first capture so that busy
traffic is written in batches rather than a transaction per request. A batch the store refuses (the database down, a lock) is kept
and tried again with backoff while new captures queue up behind it, so nothing
accepted is lost while the queue has room. Every ``sweep_every_s`` the thread
deletes what each route's retention says is due.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from gateway.accounting.completion import Completion
from gateway.capture.rows import (
    Captured,
    CaptureRow,
    Redact,
    ShadowAnswer,
    ShadowRow,
    capture_row,
    captured,
    shadow_row,
)
from gateway.capture.store import CaptureStore, CaptureStoreError
from gateway.metrics import Metrics

log = logging.getLogger("hybrid_gateway.capture")
MAX_ROW_CHARS = 2 * 1024 * 1024  # a capture's text beyond this is not stored: no dataset example is this long
QUEUED_CHARS = 64 * 1024 * 1024  # what the queue may hold in all, whatever the clients send
_DAY_S = 86_400.0
_WAKE_S = 0.5  # the thread's longest wait: it notices a stop and shows the queue's depth at least this often
_Queued = Captured | ShadowAnswer


def _chars(item: _Queued) -> int:
    """The characters ``item`` holds, as its offer counted them."""
    return len(item.body) if isinstance(item, ShadowAnswer) else item.chars


class CaptureWriter:
    """``open_store`` opens the store (in the thread, so a slow database never delays start); ``redactor``
    and ``retention_days`` read a route's current policy; ``wanted`` says whether any route captures now
    (a gateway that captures nothing opens no store, unless captures arrive); ``clock`` is epoch seconds."""

    def __init__(self, open_store: Callable[[], CaptureStore], redactor: Callable[[str], Redact],
                 retention_days: Callable[[str], float], wanted: Callable[[], bool], metrics: Metrics, *,
                 capacity: int = 10_000, batch: int = 256, linger_s: float = 0.05, sweep_every_s: float = 600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._open_store = open_store
        self._redactor = redactor
        self._retention_days = retention_days
        self._wanted = wanted
        self._metrics = metrics
        self._queue: queue.SimpleQueue[_Queued] = queue.SimpleQueue()
        self._capacity = capacity
        self._batch = batch
        self._linger_s = linger_s
        self._sweep_every_s = sweep_every_s
        self._clock = clock
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the counts below, which bound the queue
        self._settled = threading.Condition(self._lock)
        self._queued_chars = 0
        self._accepted = 0
        self._finished = 0  # stored or dropped by the thread: what ``flush`` waits for, and the queue's depth
        self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
        self._next_sweep = 0.0

    def start(self) -> None:
        self._thread.start()

    def __call__(self, done: Completion) -> None:
        """The ledger hook: a captured request that succeeded goes to the queue."""
        if done.status == 200:
            self.offer(done)

    def offer_shadow(self, shadow: ShadowAnswer) -> bool:
        """Queue a shadow target's answer to a captured request, under the same bounds as ``offer``."""
        return self._queued(shadow)

    def offer(self, done: Completion) -> bool:
        """Queue ``done`` for storage; False (and counted) when it is too large or the queue is full, by count
        or by the text it holds. Never blocks."""
        if done.exchange is None:  # the route did not capture it: nothing to store
            return False
        return self._queued(captured(done))

    def _queued(self, item: _Queued) -> bool:
        """The request path's whole share of a capture: two counts under a lock and a put into a C queue
        (``queue.Queue`` and the depth gauge took ~3 us more; the thread shows the depth instead)."""
        chars = _chars(item)
        if chars > MAX_ROW_CHARS:
            self._metrics.captures.labels("too_large").inc()
            return False
        with self._lock:
            full = (self._accepted - self._finished >= self._capacity
                    or self._queued_chars + chars > QUEUED_CHARS)
            if not full:
                self._accepted += 1
                self._queued_chars += chars
        if full:
            self._metrics.captures.labels("queue_full").inc()
            return False
        self._queue.put(item)
        return True

    def flush(self, timeout_s: float) -> bool:
        """Wait until everything accepted so far is stored or dropped; False when ``timeout_s`` ran out first."""
        with self._settled:
            target = self._accepted
            return self._settled.wait_for(lambda: self._finished >= target, timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Store what is queued (for up to ``timeout_s``), then stop the thread."""
        if self._thread.is_alive():
            self.flush(timeout_s)
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _settle(self, batch: list[_Queued]) -> None:
        with self._settled:
            self._finished += len(batch)
            self._queued_chars -= sum(map(_chars, batch))
            self._settled.notify_all()
        self._show_depth()

    def _show_depth(self) -> None:
        """``gateway_capture_queue_depth``: accepted and not yet stored or dropped, the batch in hand included;
        set by the thread each time it takes, settles or waits (at least every half second)."""
        self._metrics.capture_queue.set(self._accepted - self._finished)

    def _take(self) -> list[_Queued]:
        """The next batch: waits for a first item (or the next sweep, or stop), lets ``linger_s`` pass for more
        to arrive (one wake-up per batch, not one per capture; none when stopping), then takes what is there."""
        timeout = max(self._next_sweep - self._clock(), 0.0) if self._next_sweep else self._sweep_every_s
        try:
            taken = [self._queue.get(timeout=min(timeout, _WAKE_S))]  # wakes to notice a stop
        except queue.Empty:
            self._show_depth()
            return []
        self._stop.wait(self._linger_s)
        while len(taken) < self._batch:
            try:
                taken.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self._show_depth()
        return taken

    def _rows(self, batch: list[_Queued]) -> tuple[list[CaptureRow], list[ShadowRow]]:
        rows: list[CaptureRow] = []
        shadows: list[ShadowRow] = []
        redactors: dict[str, Redact] = {}  # each route's, looked up once a batch (it hashes the policy block)
        for item in batch:
            route = item.route
            redact = redactors.get(route)
            if redact is None:
                redact = redactors[route] = self._redactor(route)
            try:
                if isinstance(item, ShadowAnswer):
                    shadows.append(shadow_row(item, redact, self._clock))
                    continue
                row = capture_row(item, redact, self._clock)
            except Exception:  # an answer the parser cannot read must not stop the others
                log.exception("capture of request %s is unreadable; dropped", item.request_id)
                self._metrics.captures.labels("unreadable").inc()
                continue
            if len(row.client_messages) + len(row.added_messages) + len(row.answer) > MAX_ROW_CHARS:
                self._metrics.captures.labels("too_large").inc()
                continue
            rows.append(row)
        return rows, shadows

    def _run(self) -> None:
        store: CaptureStore | None = None
        rows: list[CaptureRow] = []
        shadows: list[ShadowRow] = []
        pending: list[_Queued] = []  # what is behind ``rows`` and ``shadows`` (some dropped making them)
        backoff_s = 0.5
        while not (self._stop.is_set() and not pending and self._queue.empty()):
            if not pending:
                pending = self._take()
                rows, shadows = self._rows(pending)
            try:
                if store is None and (rows or shadows or (self._sweep_due() and self._wanted())):
                    store = self._opened()
                if (rows or shadows) and store is not None:
                    store.insert(rows, shadows)
                    self._metrics.captures.labels("stored").inc(len(rows))
                if pending:
                    self._settle(pending)
                rows, shadows, pending, backoff_s = [], [], [], 0.5
                if store is not None and self._sweep_due():
                    self._sweep(store)
            except Exception as exc:  # a store error, or a bug: either way the thread must live on and say so
                if isinstance(exc, CaptureStoreError):
                    log.warning("capture store %s: %s; trying again in %.1f s", "refused a batch" if store else
                                "unavailable", exc, backoff_s)
                else:
                    log.exception("capture writer failed; trying again in %.1f s", backoff_s)
                self._metrics.captures.labels("store_error").inc()
                if store is not None:
                    store.close()
                store = None
                if self._paused(backoff_s):
                    break
                backoff_s = min(backoff_s * 2, 30.0)
        while True:  # stopped with the store down: what could not be written is gone, and said so
            try:
                pending.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if pending:
            log.error("capture writer stopped with %d captures unstored", len(pending))
            self._metrics.captures.labels("lost_at_stop").inc(len(pending))
            self._settle(pending)
        if store is not None:
            store.close()

    def _paused(self, seconds: float) -> bool:
        """Wait ``seconds``, or until stopped (True), showing the depth meanwhile: it grows while the store is down."""
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            if self._stop.wait(min(left, _WAKE_S)):
                return True
            self._show_depth()
        return False

    def _opened(self) -> CaptureStore:
        store = self._open_store()
        store.migrate()
        return store

    def _sweep_due(self) -> bool:
        return self._clock() >= self._next_sweep

    def _sweep(self, store: CaptureStore) -> None:
        """Delete each stored route's captures older than its retention."""
        now = self._clock()
        self._next_sweep = now + self._sweep_every_s
        for route in store.routes():
            deleted = store.delete_before(route, now - self._retention_days(route) * _DAY_S)
            if deleted:
                self._metrics.captures_deleted.labels(route).inc(deleted)
