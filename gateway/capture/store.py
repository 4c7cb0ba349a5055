"""Captured requests in SQLite (the embedded default) or PostgreSQL (one database for every replica).

The same SQL runs on both through their DB-API drivers (the standard library's
``sqlite3``; ``psycopg`` 3, imported only when a ``postgresql://`` URL is set);
``_Dialect`` holds what differs: placeholders, how to open, how to lock for a
migration. Inserts are idempotent on the gateway's request id, so a batch
written again after an error that hid its commit is still stored once. A store
is used from one thread at a time (the capture writer's, or a CLI's).
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

from gateway.capture.migrations import MIGRATIONS
from gateway.capture.rows import CaptureFeedback, CaptureRow, ShadowRow
from policies import may_judge

_COLUMNS = CaptureRow._fields
_FEEDBACK_COLUMNS = tuple(field.name for field in fields(CaptureFeedback))
_SQLITE_BUSY_TIMEOUT_S = 5.0
_MIGRATION_LOCK = 0x6867_6361_7074  # "hgcapt": the advisory lock replicas take to migrate one at a time


class _Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...
    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    @property
    def rowcount(self) -> int: ...


class _Connection(Protocol):
    def cursor(self) -> Any: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Judges:
    """A captured request's route and arm, and who may judge it: the key tag that made it, its token's holder."""

    route: str
    arm: str
    owner: str | None
    token_digest: str | None

    def allow(self, owner: str | None, token: str | None) -> bool:
        return may_judge(owner, token, self.owner, self.token_digest)


class CaptureStoreError(RuntimeError):
    """The database refused or could not be reached: the writer counts it and tries the batch again."""


@dataclass(frozen=True)
class _Dialect:
    name: str
    placeholder: str

    def sql(self, statement: str) -> str:
        return statement.replace("?", self.placeholder)


_SQLITE = _Dialect("sqlite", "?")
_POSTGRES = _Dialect("postgres", "%s")


class CaptureStore:
    """Open with ``CaptureStore.open(url, data_dir)``; ``migrate()`` once before use."""

    def __init__(self, connection: _Connection, dialect: _Dialect, where: str) -> None:
        self._db = connection
        self._dialect = dialect
        self.where = where  # for messages: the SQLite file, or the PostgreSQL URL without its password

    @classmethod
    def open(cls, url: str | None, data_dir: Path) -> CaptureStore:
        """PostgreSQL at ``url`` when given, else ``captures.sqlite3`` under ``data_dir``."""
        try:
            if url:
                import psycopg  # only a PostgreSQL deployment pays for the driver

                parts = psycopg.conninfo.conninfo_to_dict(url)
                user = f"{parts['user']}@" if parts.get("user") else ""
                where = (f"postgresql://{user}{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/"
                         f"{parts.get('dbname', '')}")
                return cls(psycopg.connect(url, connect_timeout=5), _POSTGRES, where)
            data_dir.mkdir(parents=True, exist_ok=True)
            path = data_dir / "captures.sqlite3"
            _bind_plainly()
            db = sqlite3.connect(path, timeout=_SQLITE_BUSY_TIMEOUT_S, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: safe from a crash of the process; no fsync per batch
            return cls(db, _SQLITE, str(path))
        except Exception as exc:  # each driver has its own error tree; both become the store's
            raise CaptureStoreError(f"cannot open the capture store: {type(exc).__name__}: {exc}") from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[_Cursor]:
        cursor = self._db.cursor()
        try:
            yield cursor
            self._db.commit()
        except Exception as exc:
            with contextlib.suppress(Exception):
                self._db.rollback()
            raise CaptureStoreError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            cursor.close()

    def _execute(self, cursor: _Cursor, statement: str, params: Sequence[Any] = ()) -> Any:
        return cursor.execute(self._dialect.sql(statement), params)

    def migrate(self) -> list[int]:
        """Apply the migrations this database lacks, in order; the versions applied now."""
        applied_now: list[int] = []
        with self._transaction() as cursor:
            if self._dialect is _POSTGRES:
                self._execute(cursor, f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            else:
                self._execute(cursor, "BEGIN IMMEDIATE")  # sqlite3 opens transactions lazily; take the lock now
            self._execute(cursor, "CREATE TABLE IF NOT EXISTS capture_schema (version INTEGER PRIMARY KEY, "
                                  "description TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")
            self._execute(cursor, "SELECT version FROM capture_schema")
            done = {row[0] for row in cursor.fetchall()}
            for migration in MIGRATIONS:
                if migration.version in done:
                    continue
                for statement in migration.postgres if self._dialect is _POSTGRES else migration.sqlite:
                    self._execute(cursor, statement)
                self._execute(cursor, "INSERT INTO capture_schema VALUES (?, ?, ?)",
                              (migration.version, migration.description, time.time()))
                applied_now.append(migration.version)
        return applied_now

    def insert(self, rows: Sequence[CaptureRow], shadows: Sequence[ShadowRow] = ()) -> None:
        """Store ``rows`` and ``shadows`` in one transaction; what is already stored is kept as it is.

        Rows go in a few multi-row statements (``_spans``), not one statement a row: the driver lets go of
        the GIL around each statement it runs, and with the event loop busy each let-go is a hand-over to it
        and back (two thread switches), which cost the gateway more than the inserts themselves."""
        with self._transaction() as cursor:
            for start, count in _spans(len(rows)):
                cursor.execute(_insert_rows(self._dialect, count),
                               [value for row in rows[start:start + count] for value in row])
            if shadows:
                cursor.executemany(self._dialect.sql(
                    "INSERT INTO capture_shadows (request_id, target, answer, captured_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (request_id, target) DO NOTHING"),
                    [(s.request_id, s.target, s.answer, s.captured_at) for s in shadows])

    def shadows(self, route: str) -> dict[str, dict[str, str]]:
        """The shadow answers to ``route``'s captures: request id -> shadow target -> answer."""
        with self._transaction() as cursor:
            self._execute(cursor, "SELECT s.request_id, s.target, s.answer FROM capture_shadows s JOIN captures c "
                                  "ON c.request_id = s.request_id WHERE c.route = ?", (route,))
            found = cursor.fetchall()
        answers: dict[str, dict[str, str]] = {}
        for request_id, target, answer in found:
            answers.setdefault(request_id, {})[target] = answer
        return answers

    def delete_before(self, route: str, before: float) -> int:
        """Delete ``route``'s captures taken before ``before`` (epoch seconds); how many went."""
        with self._transaction() as cursor:
            self._execute(cursor, "DELETE FROM captures WHERE route = ? AND captured_at < ?", (route, before))
            return int(cursor.rowcount)

    def routes(self) -> list[str]:
        with self._transaction() as cursor:
            self._execute(cursor, "SELECT DISTINCT route FROM captures ORDER BY route")
            return [row[0] for row in cursor.fetchall()]

    def read(self, route: str, since: float | None = None, until: float | None = None) -> list[CaptureRow]:
        """``route``'s captures taken in [since, until), oldest first."""
        with self._transaction() as cursor:
            self._execute(cursor, f"SELECT {', '.join(_COLUMNS)} FROM captures WHERE route = ? AND captured_at >= ? "
                                  "AND captured_at < ? ORDER BY captured_at, request_id",
                          (route, since if since is not None else float("-inf"),
                           until if until is not None else float("inf")))
            return [CaptureRow(*_typed(row)) for row in cursor.fetchall()]

    def judges(self, request_id: str) -> Judges | None:
        """Who may give feedback on a captured request, and its route; None when it was not captured."""
        with self._transaction() as cursor:
            self._execute(cursor, "SELECT route, arm, owner, token_digest FROM captures WHERE request_id = ?",
                          (request_id,))
            found = cursor.fetchall()
        return Judges(*found[0]) if found else None

    def add_feedback(self, feedback: CaptureFeedback, *, replace: bool) -> bool:
        """Store ``feedback``; False when the request has some already and ``replace`` is not asked."""
        marks = ", ".join("?" * len(_FEEDBACK_COLUMNS))
        update = ", ".join(f"{name} = excluded.{name}" for name in _FEEDBACK_COLUMNS[1:])
        conflict = f"DO UPDATE SET {update}" if replace else "DO NOTHING"
        with self._transaction() as cursor:
            self._execute(cursor, f"INSERT INTO capture_feedback ({', '.join(_FEEDBACK_COLUMNS)}) VALUES ({marks}) "
                                  f"ON CONFLICT (request_id) {conflict}", astuple(feedback))
            return int(cursor.rowcount) > 0

    def feedback(self, route: str) -> dict[str, CaptureFeedback]:
        """The feedback on ``route``'s captures, by request id."""
        columns = ", ".join(f"f.{name}" for name in _FEEDBACK_COLUMNS)
        with self._transaction() as cursor:
            self._execute(cursor, f"SELECT {columns} FROM capture_feedback f JOIN captures c "
                                  "ON c.request_id = f.request_id WHERE c.route = ?", (route,))
            rows = cursor.fetchall()
        return {request_id: CaptureFeedback(request_id, score, None if success is None else bool(success), comment, at)
                for request_id, score, success, comment, at in rows}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._db.close()


def _spans(count: int) -> Iterator[tuple[int, int]]:
    """``count`` rows as (start, length) spans whose lengths are powers of two up to 256, largest first: a
    batch of 75 is four statements, and the drivers' statement caches see at most nine shapes."""
    start = 0
    while start < count:
        size = 1 << min((count - start).bit_length() - 1, 8)
        yield start, size
        start += size


@functools.cache
def _insert_rows(dialect: _Dialect, count: int) -> str:
    marks = "(" + ", ".join("?" * len(_COLUMNS)) + ")"
    return dialect.sql(f"INSERT INTO captures ({', '.join(_COLUMNS)}) VALUES {', '.join([marks] * count)} "
                       "ON CONFLICT (request_id) DO NOTHING")


def _bind_plainly() -> None:
    """Bind None and booleans without sqlite3's adapter search: for any value not exactly an int, float, str or
    bytearray it looks an adapter up and, finding none, raises and formats an AttributeError on the way (~4k
    instructions, four times a capture row). Registered, they bind as they would anyway, NULL and 0/1, after one
    dictionary lookup. The registry is the module's, for the process: these two change no value it binds."""
    sqlite3.register_adapter(type(None), _itself)
    sqlite3.register_adapter(bool, int)


def _itself(value: None) -> None:
    return value


def _typed(row: Sequence[Any]) -> tuple[Any, ...]:
    """SQLite hands booleans back as 0/1: the row as ``CaptureRow`` types it."""
    values = list(row)
    for index in (_COLUMNS.index("stream"), _COLUMNS.index("usage_estimated")):
        if values[index] is not None:
            values[index] = bool(values[index])
    return tuple(values)
