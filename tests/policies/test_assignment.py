"""Variant assignment: splits match the weights, keys stay sticky across processes, windows and overrides hold."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from policies.experiments.assignment import Assignment, assign, experiment_key, is_active, unit_hash
from policies.schema import Experiment, Variant

ROOT = Path(__file__).resolve().parents[2]
KEYS = [f"user-{i}" for i in range(10_000)]


def experiment(weights: dict[str, float], **fields: object) -> Experiment:
    return Experiment.model_validate(
        {"route": "support", "variants": {name: Variant(weight=w) for name, w in weights.items()}, **fields})


@pytest.mark.parametrize("weights", [
    {"control": 90, "candidate": 10},
    {"a": 50, "b": 30, "c": 20},
    {"a": 0.2, "b": 0.2, "c": 0.6},  # weights need not sum to 1 or 100
])
def test_split_over_many_keys_matches_the_weights(weights: dict[str, float]) -> None:
    exp = experiment(weights)
    counts = Counter(assign("split", exp, key).variant for key in KEYS)  # type: ignore[union-attr]
    total = sum(weights.values())
    for name, weight in weights.items():
        assert abs(counts[name] / len(KEYS) - weight / total) < 0.015, (name, counts)


def test_same_key_same_variant_and_experiments_are_independent() -> None:
    exp = experiment({"a": 50, "b": 50})
    first = [assign("one", exp, key) for key in KEYS[:500]]
    assert first == [assign("one", exp, key) for key in KEYS[:500]]
    assert all(a is not None and a.keyed and not a.forced for a in first)
    other = [assign("two", exp, key).variant for key in KEYS[:500]]  # type: ignore[union-attr]
    agree = sum(a.variant == b for a, b in zip(first, other, strict=True))  # type: ignore[union-attr]
    assert 200 < agree < 300  # about half: a user's bucket in one experiment says nothing of the next


def test_assignment_is_identical_in_another_process_with_another_hash_seed() -> None:
    keys = [*KEYS[:300], "", "ünïcödé", "a" * 500]
    exp = experiment({"a": 50, "b": 30, "c": 20})
    here = [unit_hash("proc", key) for key in keys]
    script = (
        "import json, sys\n"
        "from policies.experiments.assignment import assign, unit_hash\n"
        "from policies.schema import Experiment, Variant\n"
        "keys = json.loads(sys.stdin.read())\n"
        "exp = Experiment(route='support', variants={n: Variant(weight=w) for n, w in (('a', 50), ('b', 30), ('c', 20))})\n"
        "print(json.dumps([[unit_hash('proc', k), assign('proc', exp, k or 'x').variant] for k in keys]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run([sys.executable, "-c", script], input=json.dumps(keys), capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=60, check=True)
    there = json.loads(done.stdout)
    assert [unit for unit, _ in there] == here
    assert [variant for _, variant in there] == [assign("proc", exp, k or "x").variant for k in keys]  # type: ignore[union-attr]


def test_hash_scheme_is_pinned() -> None:
    """Changing the hashing would silently move users between variants mid-experiment."""
    exp = experiment({"control": 50, "b": 30, "c": 20})
    assert unit_hash("exp", "alice") == 0.891418449809796
    assert unit_hash("exp", "carol") == 0.2020651311296474
    assert [assign("exp", exp, k).variant for k in ("alice", "bob", "carol", "dave", "erin")] == [  # type: ignore[union-attr]
        "c", "b", "control", "c", "control"]
    assert unit_hash("ab", "c") != unit_hash("a", "bc")  # the name is length-prefixed


def test_window_start_inclusive_end_exclusive_naive_means_utc() -> None:
    start, end = datetime(2025, 3, 1, 12, 0), datetime(2025, 3, 8, 12, 0)  # naive: UTC
    exp = experiment({"a": 1, "b": 1}, start=start, end=end)
    at = start.replace(tzinfo=UTC)
    assert assign("w", exp, "k", now=at - timedelta(microseconds=1)) is None
    assert assign("w", exp, "k", now=at) is not None
    assert assign("w", exp, "k", now=end.replace(tzinfo=UTC) - timedelta(seconds=1)) is not None
    assert assign("w", exp, "k", now=end.replace(tzinfo=UTC)) is None
    # 13:30 at UTC+2 is 11:30 UTC, still before the start
    assert assign("w", exp, "k", now=datetime(2025, 3, 1, 13, 30, tzinfo=timezone(timedelta(hours=2)))) is None
    assert assign("w", exp, "k", now=datetime(2025, 3, 1, 12, 30)) is not None  # naive now is UTC too


def test_open_ended_windows() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert is_active(experiment({"a": 1, "b": 1}), now)
    assert is_active(experiment({"a": 1, "b": 1}, start=now - timedelta(days=1)), now)
    assert not is_active(experiment({"a": 1, "b": 1}, end=now), now)
    assert is_active(experiment({"a": 1, "b": 1}, start=datetime(2000, 1, 1, tzinfo=UTC)))  # default now


def test_without_a_key_the_draw_is_random_and_marked_unkeyed() -> None:
    exp = experiment({"a": 90, "b": 10})
    rng = random.Random(7)
    results = [assign("r", exp, None, rng=rng) for _ in range(5_000)]
    assert all(a is not None and not a.keyed and not a.forced for a in results)
    share_b = sum(a.variant == "b" for a in results) / len(results)  # type: ignore[union-attr]
    assert abs(share_b - 0.10) < 0.015
    again = random.Random(7)
    assert [assign("r", exp, None, rng=again) for _ in range(5_000)] == results
    assert assign("r", exp, "", rng=random.Random(0)).keyed is False  # type: ignore[union-attr]
    assert assign("r", exp, None) is not None  # the module's own generator


def test_forced_variant_honoured_when_allowed() -> None:
    exp = experiment({"a": 99, "b": 1}, allow_override=True)
    assert assign("f", exp, "k", forced="b") == Assignment("f", "b", keyed=False, forced=True)


def test_forced_variant_refused_with_a_clear_message() -> None:
    closed = experiment({"a": 1, "b": 1})
    with pytest.raises(ValueError, match="experiment 'f' does not allow forcing a variant"):
        assign("f", closed, "k", forced="b")
    open_ = experiment({"a": 1, "b": 1}, allow_override=True)
    with pytest.raises(ValueError, match=r"experiment 'f' has no variant 'z' \(variants: a, b\)"):
        assign("f", open_, "k", forced="z")
    ended = experiment({"a": 1, "b": 1}, allow_override=True, end=datetime(2000, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError):  # a bad override is a client error even when the experiment is over
        assign("f", ended, "k", forced="z")
    assert assign("f", ended, "k", forced="a") is None


@pytest.mark.parametrize(("key", "user", "headers", "expected"), [
    ("user", "u-1", {"x-session-id": "s-1"}, "u-1"),
    ("user", None, {"x-session-id": "s-1"}, None),
    ("user", "  ", {}, None),
    ("session", "u-1", {"x-session-id": "s-1"}, "s-1"),
    ("session", "u-1", {"X-Session-ID": "s-2"}, "s-2"),
    ("session", "u-1", {}, None),
    ("header:X-Tenant", "u-1", {"x-tenant": "acme"}, "acme"),
    ("header:x-tenant", None, {"X-TENANT": "globex"}, "globex"),
    ("header:X-Tenant", "u-1", {"x-other": "acme"}, None),
    ("header:X-Tenant", "u-1", {"x-tenant": ""}, None),
])
def test_experiment_key_kinds(key: str, user: str | None, headers: dict[str, str], expected: str | None) -> None:
    assert experiment_key(experiment({"a": 1, "b": 1}, key=key), user, headers) == expected
