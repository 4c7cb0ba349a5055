"""The capture tables' schema, as numbered migrations applied once each, in order.

A store records each applied version in ``capture_schema``; opening a store applies
the missing ones inside one locked transaction, so replicas starting together
against one PostgreSQL migrate it once. A migration is never edited after release:
a change is a new, higher version. Each gives its statements for both databases.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


def _captures(real: str, boolean: str) -> str:
    return f"""CREATE TABLE captures (
    request_id TEXT PRIMARY KEY,
    captured_at {real} NOT NULL,
    route TEXT NOT NULL,
    arm TEXT NOT NULL,
    target TEXT NOT NULL,
    experiment TEXT NOT NULL,
    variant TEXT NOT NULL,
    score {real},
    stream {boolean} NOT NULL,
    client_messages TEXT NOT NULL,
    added_messages TEXT NOT NULL,
    answer TEXT NOT NULL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    usage_estimated {boolean},
    cost_usd {real},
    latency_ms {real} NOT NULL
)"""


_INDEX = "CREATE INDEX captures_route_time ON captures (route, captured_at)"


def _shadows(real: str) -> str:
    return f"""CREATE TABLE capture_shadows (
    request_id TEXT NOT NULL,
    target TEXT NOT NULL,
    answer TEXT NOT NULL,
    captured_at {real} NOT NULL,
    PRIMARY KEY (request_id, target)
)"""


def _feedback(real: str, boolean: str) -> tuple[str, ...]:
    return ("ALTER TABLE captures ADD COLUMN owner TEXT", "ALTER TABLE captures ADD COLUMN token_digest TEXT",
            f"""CREATE TABLE capture_feedback (
    request_id TEXT PRIMARY KEY,
    score {real},
    success {boolean},
    comment TEXT,
    at {real} NOT NULL
)""")

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "captures: one redacted request per row, keyed by the gateway's request id",
              (_captures("REAL", "INTEGER"), _INDEX), (_captures("DOUBLE PRECISION", "BOOLEAN"), _INDEX)),
    Migration(2, "feedback joined to captures by request id; who may give it (key tag, token digest)",
              _feedback("REAL", "INTEGER"), _feedback("DOUBLE PRECISION", "BOOLEAN")),
    Migration(3, "shadow answers to captured requests: the other model's answer to the same prompt",
              (_shadows("REAL"),), (_shadows("DOUBLE PRECISION"),)),
)
