"""Account each finished request exactly once: metrics and one JSON access-log line.

Each request ends in one ``Completion`` (``gateway.accounting.completion``), built
once by whichever path finished it (a JSON reply, a stream, a failure);
``Ledger.close`` is the only place that turns it into metrics, the access log
line and the hooks' records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

import orjson
from prometheus_client import Counter, Histogram

from gateway.accounting.completion import Completion, Routing, Strategy
from gateway.metrics import Metrics


@dataclass(frozen=True)
class _Children:
    """The labelled metrics every request of one label set updates, and that set's label values."""

    labels: tuple[str, str, str, str]
    requests: Counter
    duration: Histogram
    overhead: Histogram
    input_tokens: Counter
    output_tokens: Counter
    cost: Counter


class Ledger:
    """``access`` receives one JSON line per request (None: no access log); each of ``hooks`` every
    ``Completion`` (the traffic window, experiment outcomes).

    The lines go straight to a binary stream rather than through ``logging``, whose
    record objects and caller lookup cost ~6% of a request's CPU on the hot path.
    """

    def __init__(self, metrics: Metrics, access: BinaryIO | None = None,
                 hooks: Sequence[Callable[[Completion], None]] = ()) -> None:
        self.metrics = metrics
        self._access = access
        self._hooks = tuple(hooks)
        self._cache: dict[tuple[str, str, str, str, int], _Children] = {}  # by the routing's raw values
        self._upstream: dict[str, Histogram] = {}  # made on first use: a series only for what happened
        self._ttft: dict[tuple[str, str, str, str], Histogram] = {}
        self._lookups: dict[tuple[str, str], Counter] = {}  # cache lookups by (route, result)

    def _children(self, routing: Routing, status: int) -> _Children:
        """The metric children of one (route, arm, target, variant, status): found once, then reused.

        prometheus-client's ``.labels()`` validates and hashes its arguments under a lock on every call;
        the label sets are bounded by the policy, so the children are kept per set, found by the routing's
        own values (its ``labels()`` are computed only for a new set).
        """
        key = (routing.route, routing.arm, routing.target, routing.variant, status)
        children = self._cache.get(key)
        if children is None:
            m, labels = self.metrics, routing.labels()
            children = _Children(labels, m.requests.labels(*labels, str(status)), m.request_duration.labels(*labels),
                                 m.overhead.labels(labels[0]), m.tokens.labels(*labels, "input"),
                                 m.tokens.labels(*labels, "output"), m.cost.labels(*labels))
            self._cache[key] = children
        return children

    def close(self, done: Completion) -> None:
        """Record how ``done`` ended in metrics, the access log and every hook."""
        routing, delivery, usage = done.routing, done.delivery, done.usage
        children = self._children(routing, done.status)
        labels = children.labels
        m = self.metrics
        children.requests.inc()
        overhead_s = done.overhead_s  # once: the metric and the log line read it
        children.duration.observe(done.duration_s)
        children.overhead.observe(overhead_s)
        if delivery.upstream_s and routing.target:
            upstream = self._upstream.get(routing.target)
            if upstream is None:
                upstream = self._upstream[routing.target] = m.upstream_duration.labels(routing.target)
            upstream.observe(delivery.upstream_s)
        if done.ttft_s is not None:
            ttft = self._ttft.get(labels)
            if ttft is None:
                ttft = self._ttft[labels] = m.ttft.labels(*labels)
            ttft.observe(done.ttft_s)
        if done.error_code is not None:
            m.errors.labels(labels[0], done.error_code).inc()
        if usage is not None:
            children.input_tokens.inc(usage.prompt_tokens)
            children.output_tokens.inc(usage.completion_tokens)
            if usage.estimated:
                m.estimated_usage.labels(routing.target).inc()
            if done.cost_usd is None and usage.total_tokens:
                m.unpriced.labels(routing.target).inc()
        answer_cost = done.answer_cost_usd
        if answer_cost:
            children.cost.inc(answer_cost)
        if delivery.strategy is not None:
            self._strategy(done, delivery.strategy)
        if delivery.cache:
            lookups = self._lookups.get((routing.route, delivery.cache))
            if lookups is None:
                lookups = self._lookups[(routing.route, delivery.cache)] = m.cache_lookups.labels(routing.route,
                                                                                                  delivery.cache)
            lookups.inc()
            if delivery.saved_usd:
                m.cache_saved.labels(routing.route).inc(delivery.saved_usd)
        if done.arrival.key is not None:
            self._key(done)
        self._log(done, overhead_s)
        for hook in self._hooks:
            hook(done)

    def _strategy(self, done: Completion, strategy: Strategy) -> None:
        """A cascade's or ensemble's outcome, and each call it paid for and did not return, under that call's own
        arm and target: the metrics' cost then adds up to the requests' ``x-gateway-cost-usd``."""
        m, routing = self.metrics, done.routing
        if strategy.name == "cascade":
            m.cascades.labels(routing.route, strategy.outcome).inc()
            if strategy.rejected_by:
                m.cascade_rejections.labels(routing.route, strategy.rejected_by).inc()
        else:
            m.ensembles.labels(routing.route, strategy.outcome).inc()
        for call in strategy.calls:
            labels = (routing.route, call.arm, call.target, routing.variant)
            m.tokens.labels(*labels, "input").inc(call.usage.prompt_tokens)
            m.tokens.labels(*labels, "output").inc(call.usage.completion_tokens)
            if call.cost_usd is None:
                m.unpriced.labels(call.target).inc()
            else:
                m.cost.labels(*labels).inc(call.cost_usd)

    def _key(self, done: Completion) -> None:
        """A named key's request, tokens and spend (the whole ``x-gateway-cost-usd``, paid calls included)."""
        m, key, usage = self.metrics, done.arrival.key, done.usage
        m.key_requests.labels(key, str(done.status)).inc()
        calls = done.delivery.calls
        if usage is not None or calls:
            m.key_tokens.labels(key, "input").inc((usage.prompt_tokens if usage else 0)
                                                  + sum(call.usage.prompt_tokens for call in calls))
            m.key_tokens.labels(key, "output").inc((usage.completion_tokens if usage else 0)
                                                   + sum(call.usage.completion_tokens for call in calls))
        if done.cost_usd:
            m.key_spend.labels(key).inc(done.cost_usd)

    def _log(self, done: Completion, overhead_s: float) -> None:
        if self._access is None:
            return
        arrival, routing, delivery, usage = done.arrival, done.routing, done.delivery, done.usage
        self._access.write(orjson.dumps({
            "ts": datetime.now(UTC),  # when the request finished; orjson writes ISO 8601 with a Z
            "request_id": arrival.request_id, "client_request_id": arrival.client_request_id,
            "endpoint": arrival.endpoint, "key": arrival.key, "route": routing.route,
            "arm": routing.arm, "target": routing.target, "variant": routing.variant, "status": done.status,
            "error": done.error_code, "stream": routing.stream, "latency_ms": round(done.duration_s * 1000, 3),
            "overhead_ms": round(overhead_s * 1000, 3),
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None,
            "usage_estimated": usage.estimated if usage else None,
            "cost_usd": done.cost_usd, "rag": delivery.rag, "score": routing.score, "attempts": delivery.attempts,
            "rag_ms": round(delivery.rag_s * 1000, 3) if delivery.rag else None,
            "fallback": delivery.fallback or None, "experiment": routing.experiment or None,
            "strategy": _strategy_fields(delivery.strategy), "cache": delivery.cache or None,
        }, option=orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE))
        self._access.flush()


def _strategy_fields(strategy: Strategy | None) -> dict[str, object] | None:
    """The access log's view of a strategy: what it did, not the calls (their cost is the line's)."""
    if strategy is None:
        return None
    return {"name": strategy.name, "outcome": strategy.outcome, "rejected_by": strategy.rejected_by,
            "detail": strategy.detail, "calls": len(strategy.calls)}
