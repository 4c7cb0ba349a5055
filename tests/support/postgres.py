"""A fresh database on the machine's PostgreSQL (127.0.0.1:5432, trust auth) for each test that needs one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from tests.support.required import unavailable

SERVER_URL = os.environ.get("HYBRID_GATEWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(SERVER_URL, autocommit=True, connect_timeout=2)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at {SERVER_URL} is unreachable ({exc})", "start PostgreSQL to run this test")


@contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of a new, empty database, dropped afterwards (never a database other tests use)."""
    name = f"hgtest_{uuid.uuid4().hex[:12]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield SERVER_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
