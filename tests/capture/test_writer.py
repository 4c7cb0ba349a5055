"""The capture writer on real SQLite and PostgreSQL: nothing accepted is lost, a full queue drops and counts
without blocking, a locked or absent database is waited out, and retention deletes what is due."""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from gateway.capture import CaptureStore, CaptureWriter, Redactor
from gateway.capture import writer as writing
from gateway.metrics import Metrics
from tests.capture.conftest import OpenStore, completed
from tests.support.clock import FakeClock
from tests.support.metrics import metric_sum
from tests.support.polling import poll

THREADS, PER_THREAD = 8, 250


def _writer(open_store: OpenStore, metrics: Metrics, *, capacity: int = 10_000, clock: FakeClock | None = None,
            retention: dict[str, float] | None = None) -> CaptureWriter:
    kept = retention or {}
    writer = CaptureWriter(open_store, lambda route: Redactor(), lambda route: kept.get(route, 90.0), lambda: True,
                           metrics, capacity=capacity, sweep_every_s=3_600.0, clock=clock or FakeClock())
    writer.start()
    return writer


def _offer_from_threads(writer: CaptureWriter, prefix: str) -> list[bool]:
    """Every thread offers its captures at once; what each offer answered."""
    answers: list[bool] = []
    lock, start = threading.Lock(), threading.Barrier(THREADS)

    def offer(thread: int) -> None:
        start.wait()
        mine = [writer.offer(completed(f"{prefix}-{thread}-{n}", text=f"question {n} from {thread}"))
                for n in range(PER_THREAD)]
        with lock:
            answers.extend(mine)

    threads = [threading.Thread(target=offer, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def _count(metrics: Metrics, result: str) -> float:
    return metric_sum(metrics.exposition().decode(), "gateway_captures_total", result=result)


def test_concurrent_captures_are_each_stored_once(open_store: OpenStore) -> None:
    metrics = Metrics()
    writer = _writer(open_store, metrics)
    answers = _offer_from_threads(writer, "gw")
    assert writer.flush(60)
    writer.close()
    rows = open_store().read("support")
    assert all(answers) and len(rows) == THREADS * PER_THREAD
    assert len({row.request_id for row in rows}) == THREADS * PER_THREAD
    assert _count(metrics, "stored") == THREADS * PER_THREAD and _count(metrics, "queue_full") == 0


@contextmanager
def _locked(open_store: OpenStore, tmp_path: Path) -> Iterator[None]:
    """Hold the captures table so no write can pass, from another connection, until the block ends."""
    setup = open_store()
    setup.migrate()
    where = setup.where
    setup.close()
    if where.startswith("postgresql://"):
        with psycopg.connect(where) as holder:  # trust auth: the URL without a password is enough
            holder.execute("LOCK TABLE captures IN ACCESS EXCLUSIVE MODE")
            yield
            holder.rollback()
        return
    holder = sqlite3.connect(tmp_path / "captures.sqlite3", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_full_queue_drops_and_counts_without_blocking_and_loses_nothing_it_accepted(
        open_store: OpenStore, tmp_path: Path) -> None:
    metrics = Metrics()
    with _locked(open_store, tmp_path):
        writer = _writer(open_store, metrics, capacity=100)
        answers = _offer_from_threads(writer, "burst")  # all return while the table is held: no offer waited
        accepted, dropped = answers.count(True), answers.count(False)
        assert dropped > 0 and accepted >= 100
        assert _count(metrics, "queue_full") == dropped
    assert writer.flush(60)  # the lock is gone: the held batch and the queue go in
    writer.close()
    rows = open_store().read("support")
    assert len(rows) == accepted == _count(metrics, "stored")
    assert accepted + dropped == THREADS * PER_THREAD


def test_a_database_that_is_down_at_start_is_waited_for(tmp_path: Path) -> None:
    """The store cannot open (its directory is a file) until the path is fixed: captures wait, then go in."""
    blocked = tmp_path / "data"
    blocked.write_text("not a directory")
    metrics = Metrics()
    writer = _writer(lambda: CaptureStore.open(None, blocked), metrics)
    assert writer.offer(completed("gw-waits"))
    poll(lambda: _count(metrics, "store_error") >= 1, "the writer to meet the unavailable store")
    blocked.unlink()
    assert writer.flush(60)
    writer.close()
    assert [row.request_id for row in CaptureStore.open(None, blocked).read("support")] == ["gw-waits"]


def test_a_queued_capture_keeps_none_of_the_requests_records_alive(tmp_path: Path) -> None:
    """Queued, a capture holds its own fields and the messages, not the request's ``Completion``: that dies with
    the request, as a plain request's does, and the store still gets everything the row needs."""
    metrics = Metrics()
    writer = CaptureWriter(lambda: CaptureStore.open(None, tmp_path), lambda route: Redactor(), lambda route: 90.0,
                           lambda: True, metrics, clock=FakeClock())  # not started: the capture stays queued
    done = completed("gw-queued", text="Where is order 1234?")
    record = weakref.ref(done)
    assert writer.offer(done)
    del done
    assert record() is None
    writer.start()
    assert writer.flush(60)
    writer.close()
    [row] = CaptureStore.open(None, tmp_path).read("support")
    assert (row.request_id, row.arm, row.target, row.prompt_tokens, row.completion_tokens) == (
        "gw-queued", "fine_tuned", "small", 12, 4)
    assert row.messages == [{"role": "user", "content": "Where is order 1234?"}]
    assert row.answer == "In 5 days."


def test_retention_deletes_each_routes_captures_when_they_are_due(open_store: OpenStore) -> None:
    clock, metrics = FakeClock(), Metrics()
    writer = _writer(open_store, metrics, clock=clock, retention={"short": 1.0, "long": 30.0})
    for request_id, route in (("a", "short"), ("b", "long")):
        assert writer.offer(completed(request_id, route=route))
    assert writer.flush(30)
    clock.now += 2 * 86_400 + 3_600  # past the short route's day, and past the next sweep
    store = open_store()
    poll(lambda: not store.read("short"), "the short route's capture to be deleted")
    assert [row.request_id for row in store.read("long")] == ["b"]
    writer.close()
    assert metric_sum(metrics.exposition().decode(), "gateway_captures_deleted_total", route="short") == 1


def test_the_queue_is_bounded_by_the_text_it_holds_not_only_by_count(
        open_store: OpenStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A few huge requests cannot hold gigabytes: one over the row limit is refused outright, and while the
    store is held the queue takes others only up to its text budget (both made small here)."""
    monkeypatch.setattr(writing, "MAX_ROW_CHARS", 200_000)
    monkeypatch.setattr(writing, "QUEUED_CHARS", 1_000_000)
    metrics = Metrics()
    medium = "word " * 30_000  # 150,000 characters: six fit the budget, the seventh does not
    with _locked(open_store, tmp_path):
        writer = _writer(open_store, metrics)
        assert not writer.offer(completed("huge", text="word " * 50_000))
        answers = [writer.offer(completed(f"medium-{n}", text=medium)) for n in range(10)]
        assert answers == [True] * 6 + [False] * 4
        assert _count(metrics, "too_large") == 1 and _count(metrics, "queue_full") == 4
    assert writer.flush(60)
    writer.close()
    assert sorted(row.request_id for row in open_store().read("support")) == [f"medium-{n}" for n in range(6)]
