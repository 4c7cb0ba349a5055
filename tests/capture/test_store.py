"""The capture store on real SQLite and PostgreSQL: migrations once, rows once, retention by route."""

from __future__ import annotations

import sqlite3
import threading

import psycopg

from gateway.capture import capture_row, captured
from gateway.capture.migrations import MIGRATIONS
from tests.capture.conftest import OpenStore, completed

EVERY_VERSION = [migration.version for migration in MIGRATIONS]


def _row(request_id: str, route: str = "support", at: float = 1_000.0) -> object:
    return capture_row(captured(completed(request_id, route)), lambda text: text, lambda: at)


def test_migrations_apply_once_even_when_replicas_start_together(open_store: OpenStore) -> None:
    stores = [open_store() for _ in range(4)]
    applied: list[list[int]] = []
    start = threading.Barrier(len(stores))

    def migrate(index: int) -> None:
        start.wait()
        applied.append(stores[index].migrate())

    threads = [threading.Thread(target=migrate, args=(index,)) for index in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(applied) == [[], [], [], EVERY_VERSION]  # one replica migrated; the others found it done
    assert stores[0].migrate() == []
    for store in stores:
        store.close()


def test_a_request_is_stored_once_and_read_back_as_written(open_store: OpenStore) -> None:
    store = open_store()
    store.migrate()
    first, again = _row("gw-1"), _row("gw-1")
    store.insert([first, _row("gw-2", at=2_000.0)])
    store.insert([again])  # a batch written again after an error that hid its commit
    rows = store.read("support")
    assert [row.request_id for row in rows] == ["gw-1", "gw-2"]
    assert rows[0] == first
    assert rows[0].messages == [{"role": "user", "content": "How do refunds work?"}]
    assert rows[0].added_messages == '[{"role":"system","content":"You are the support desk."}]'
    assert rows[0].answer == "In 5 days."
    assert [row.request_id for row in store.read("support", since=1_500.0)] == ["gw-2"]
    store.close()


def test_retention_deletes_only_the_routes_rows_before_the_cut(open_store: OpenStore) -> None:
    store = open_store()
    store.migrate()
    store.insert([_row("old", at=100.0), _row("new", at=900.0), _row("other", route="sales", at=100.0)])
    assert store.delete_before("support", 500.0) == 1
    assert [row.request_id for row in store.read("support")] == ["new"]
    assert [row.request_id for row in store.read("sales")] == ["other"]
    assert store.routes() == ["sales", "support"]
    store.close()


_OLD_ROW = ("INSERT INTO captures (request_id, captured_at, route, arm, target, experiment, variant, stream, "
            "client_messages, added_messages, answer, latency_ms) "
            "VALUES ('gw-old', 1, 'support', 'prompted', 'big', '', 'none', {false}, '[]', '[]', 'hi', 5)")
_VERSION_1 = ("CREATE TABLE capture_schema (version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
              "applied_at DOUBLE PRECISION NOT NULL)", "INSERT INTO capture_schema VALUES (1, 'captures', 0)")


def test_a_database_at_version_1_is_upgraded_in_place_keeping_its_rows(open_store: OpenStore) -> None:
    """Version 1 as an earlier release left it, with one capture: opening it now applies the rest, keeps the row."""
    store = open_store()
    postgres = store.where.startswith("postgresql://")
    statements = (*MIGRATIONS[0].postgres, *_VERSION_1, _OLD_ROW.format(false="false")) if postgres else (
        *MIGRATIONS[0].sqlite, *_VERSION_1, _OLD_ROW.format(false="0"))
    with psycopg.connect(store.where) if postgres else sqlite3.connect(store.where) as db:
        for statement in statements:
            db.execute(statement)
    assert store.migrate() == EVERY_VERSION[1:]
    (old,) = store.read("support")
    assert (old.request_id, old.answer, old.owner, old.stream) == ("gw-old", "hi", None, False)
    store.close()
