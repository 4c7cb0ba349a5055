"""Time-bucketed traffic counters per route and arm: the evidence behind the live break-even.

A monthly volume extrapolated from "requests since the process started" is
noise after a few seconds and forgotten at every restart. The live economics
instead read a sliding window (e.g. the last 7 days) of counters kept in
fixed-width buckets, so the rate is requests over a stated stretch of time.
The window is cut into :data:`BUCKETS_PER_WINDOW` buckets aligned on the epoch;
its start is the first bucket that reaches back ``window_s`` seconds, or the
first request ever recorded if that is later (time before it holds no
evidence either way).

This module is the pure part: the grid, the in-memory buckets a process
accumulates between flushes, and the :class:`Window` every store reads back.
Where the buckets persist is the stores' business (``gateway.accounting.window_store``
for the data directory, ``gateway.accounting.cluster_ledger`` for Redis).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Protocol

from gateway.accounting.completion import Completion

FIELDS = ("requests", "cost_usd", "input_tokens", "output_tokens", "routed_cost_usd")
BUCKETS_PER_WINDOW = 168
"""An hour per bucket over 7 days; finer than the minimum observation at any sensible window."""

Key = tuple[int, str, str]
"""(bucket index, route, arm)."""


@dataclass(frozen=True)
class Counts:
    """Successful requests and what they cost, summed; ``routed_cost_usd``: what routing alone would have paid
    for them (less than ``cost_usd`` where a cascade escalated or an ensemble called both arms)."""

    requests: float = 0.0
    cost_usd: float = 0.0
    input_tokens: float = 0.0
    output_tokens: float = 0.0
    routed_cost_usd: float = 0.0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(self.values(), other.values(), strict=True)))

    def values(self) -> Values:
        return (self.requests, self.cost_usd, self.input_tokens, self.output_tokens, self.routed_cost_usd)

    def per_request(self, value: float) -> float | None:
        return value / self.requests if self.requests else None


Values = tuple[float, float, float, float, float]
"""One request's numbers in the order of :data:`FIELDS` (plain floats: this runs once per request)."""


CACHE_ARM = "cache"
"""The arm a cache hit is counted under: it answered, and no arm was paid (``gateway.response_cache``)."""

Labels = tuple[str, str, str, str]
"""route, arm, target, variant: as ``Routing.labels``."""


def rows_of(done: Completion) -> tuple[tuple[Labels, Values], ...]:
    """What one finished request adds: the request, its answer's tokens and cost under the arm that answered,
    and each call a cascade or ensemble paid for and did not return under its own arm and target, with no
    request: the arm's cost per query then holds what it cost to get its answers, and the prompted arm's stays
    the counterfactual's. The routed cost goes with the rows routing alone would have paid for. A cache hit
    is a request of the arm ``cache`` at no cost: counted in the ledger, left out of the break-even."""
    usage, routing, strategy = done.usage, done.routing, done.delivery.strategy
    labels = routing.labels()
    if done.delivery.cache == "hit":  # answered, under the cache's own arm: no arm was paid for it
        return (((labels[0], CACHE_ARM, labels[2], labels[3]), (1.0, 0.0, 0.0, 0.0, 0.0)),)
    answer_cost = done.answer_cost_usd or 0.0
    answer: tuple[Labels, Values] = (labels, (1.0, answer_cost, float(usage.prompt_tokens if usage else 0),
                                              float(usage.completion_tokens if usage else 0),
                                              answer_cost if strategy is None or strategy.answer_routed else 0.0))
    if strategy is None or not strategy.calls:
        return (answer,)
    return (answer, *(((labels[0], call.arm, call.target, labels[3]),
                       (0.0, call.cost_usd or 0.0, float(call.usage.prompt_tokens),
                        float(call.usage.completion_tokens), (call.cost_usd or 0.0) if call.routed else 0.0))
                      for call in strategy.calls))


@dataclass(frozen=True)
class Grid:
    """Bucket arithmetic for one window length."""

    window_s: float

    def __post_init__(self) -> None:
        if not self.window_s > 0:
            raise ValueError(f"the economics window must be > 0 seconds, got {self.window_s}")

    @property
    def width_s(self) -> float:
        return self.window_s / BUCKETS_PER_WINDOW

    def bucket(self, at: float) -> int:
        return math.floor(at / self.width_s)

    def first(self, now: float) -> int:
        """The oldest bucket still inside the window ending at ``now``."""
        return self.bucket(now - self.window_s)


@dataclass(frozen=True)
class Window:
    """What a store holds for the window ending at ``end``: per (route, arm) totals and their time span."""

    window_s: float
    start: float
    """Epoch seconds the evidence begins: the window's first bucket, or the first request if later."""
    end: float
    scope: str
    """``cluster`` (Redis), ``data_dir`` (this machine's persisted store) or ``process`` (Redis down)."""
    counts: dict[tuple[str, str], Counts] = field(default_factory=dict)

    @property
    def observed_s(self) -> float:
        return max(self.end - self.start, 0.0)

    def arms(self, route: str) -> dict[str, Counts]:
        return {arm: c for (r, arm), c in self.counts.items() if r == route}


def window_of(grid: Grid, now: float, since: float | None, scope: str,
              rows: dict[Key, Counts]) -> Window:
    """Sum ``rows`` (any buckets) over the window ending at ``now``; ``since`` is the first request's time."""
    first = grid.first(now)
    totals: dict[tuple[str, str], Counts] = defaultdict(Counts)
    for (bucket, route, arm), counts in rows.items():
        if first <= bucket <= grid.bucket(now):
            totals[(route, arm)] += counts
    start = first * grid.width_s
    if since is None:
        start = now
    elif since > start:
        start = since
    return Window(grid.window_s, start, now, scope, dict(totals))


class MemoryBuckets:
    """One process's counts by bucket, added on the hot path with no I/O (in-place float additions)."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self._rows: dict[Key, list[float]] = {}
        self.since: float | None = None

    def add(self, at: float, route: str, arm: str, values: Values) -> None:
        key = (self.grid.bucket(at), route, arm)
        row = self._rows.get(key)
        if row is None:
            self._rows[key] = list(values)
        else:
            row[0] += values[0]
            row[1] += values[1]
            row[2] += values[2]
            row[3] += values[3]
            row[4] += values[4]
        if self.since is None or at < self.since:
            self.since = at

    @property
    def rows(self) -> dict[Key, Counts]:
        return {key: Counts(*row) for key, row in self._rows.items()}

    def drain(self) -> tuple[dict[Key, Counts], float | None]:
        """Everything added since the last drain, handed over once (the caller writes it or merges it back)."""
        rows, since = self.rows, self.since
        self._rows, self.since = {}, None
        return rows, since

    def merge(self, rows: dict[Key, Counts], since: float | None) -> None:
        """Put back a drained batch its write failed to persist."""
        for (bucket, route, arm), counts in rows.items():
            self.add(bucket * self.grid.width_s, route, arm, counts.values())
        if since is not None and (self.since is None or since < self.since):
            self.since = since

    def prune(self, now: float) -> None:
        first = self.grid.first(now)
        for key in [k for k in self._rows if k[0] < first]:
            del self._rows[key]


class WindowStore(Protocol):
    """A ledger hook that counts successful requests, and reads the window back."""

    def __call__(self, done: Completion) -> None: ...

    async def window(self) -> Window: ...

    async def aclose(self) -> None: ...
