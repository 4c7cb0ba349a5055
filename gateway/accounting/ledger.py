"""Account each finished request exactly once: metrics and one JSON access-log line.

A ``RequestRecord`` travels with the request and is filled in as it goes;
``Ledger.close`` is the only place that turns it into metrics and the access
log, and it refuses to close a record twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO

import orjson
from prometheus_client import Counter, Histogram

from gateway.accounting.usage import Usage
from gateway.metrics import Metrics


@dataclass
class RequestRecord:
    """``request_id`` is the gateway's own (``gateway.pipeline.intake.new_request_id``), the key of every record made
    from this one; ``client_request_id`` is the caller's ``x-request-id``, echoed and logged for correlation."""

    request_id: str
    endpoint: str
    client_request_id: str | None = None
    started: float = field(default_factory=time.perf_counter)
    route: str = ""
    arm: str = ""
    target: str = ""
    variant: str = "none"
    experiment: str = ""
    keyed: bool = False
    status: int = 200
    error_code: str | None = None
    usage: Usage | None = None
    cost_usd: float | None = None
    upstream_s: float = 0.0
    ttft_s: float | None = None
    stream: bool = False
    rag: str | None = None
    rag_s: float = 0.0  # time retrieval added (queue wait, embedding, search)
    score: float | None = None
    attempts: int = 0
    fallback: str = ""
    sources: str = ""
    owner: str | None = None  # the caller's key tag (gateway.pipeline.intake.authenticate); None while keys are off
    feedback_token: str | None = None  # given to the caller of an experiment request, to send with feedback
    closed: bool = False

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def overhead_s(self) -> float:
        return max(self.elapsed() - self.upstream_s, 0.0)

    def labels(self) -> tuple[str, str, str, str]:
        return (self.route or "unknown", self.arm or "none", self.target or "none", self.variant)


@dataclass(frozen=True)
class _Children:
    """The labelled metrics every request of one label set updates."""

    requests: Counter
    duration: Histogram
    overhead: Histogram
    input_tokens: Counter
    output_tokens: Counter
    cost: Counter


class Ledger:
    """``access`` receives one JSON line per request (None: no access log).

    The lines go straight to a binary stream rather than through ``logging``, whose
    record objects and caller lookup cost ~6% of a request's CPU on the hot path.
    """

    def __init__(self, metrics: Metrics, access: BinaryIO | None = None) -> None:
        self.metrics = metrics
        self._access = access
        self.hooks: list[Callable[[RequestRecord], None]] = []
        self._cache: dict[tuple[str, str, str, str, int], _Children] = {}

    def _children(self, labels: tuple[str, str, str, str], status: int) -> _Children:
        """The metric children of one (route, arm, target, variant, status): found once, then reused.

        prometheus-client's ``.labels()`` validates and hashes its arguments under a lock on every call;
        the label sets are bounded by the policy, so the children are kept per set.
        """
        key = (*labels, status)
        children = self._cache.get(key)
        if children is None:
            m = self.metrics
            children = _Children(m.requests.labels(*labels, str(status)), m.request_duration.labels(*labels),
                                 m.overhead.labels(labels[0]), m.tokens.labels(*labels, "input"),
                                 m.tokens.labels(*labels, "output"), m.cost.labels(*labels))
            self._cache[key] = children
        return children

    def close(self, record: RequestRecord) -> None:
        """Record ``record``'s outcome in metrics and the access log, once."""
        if record.closed:
            return
        record.closed = True
        duration = record.elapsed()
        labels = record.labels()
        children = self._children(labels, record.status)
        m = self.metrics
        children.requests.inc()
        children.duration.observe(duration)
        children.overhead.observe(record.overhead_s())
        if record.upstream_s and record.target:
            m.upstream_duration.labels(record.target).observe(record.upstream_s)
        if record.ttft_s is not None:
            m.ttft.labels(*labels).observe(record.ttft_s)
        if record.error_code is not None:
            m.errors.labels(labels[0], record.error_code).inc()
        if record.usage is not None:
            children.input_tokens.inc(record.usage.prompt_tokens)
            children.output_tokens.inc(record.usage.completion_tokens)
            if record.usage.estimated:
                m.estimated_usage.labels(record.target).inc()
            if record.cost_usd is None and record.usage.total_tokens:
                m.unpriced.labels(record.target).inc()
        if record.cost_usd:
            children.cost.inc(record.cost_usd)
        self._log(record, duration)
        for hook in self.hooks:
            hook(record)

    def _log(self, record: RequestRecord, duration: float) -> None:
        if self._access is None:
            return
        usage = record.usage
        self._access.write(orjson.dumps({
            "ts": datetime.now(UTC),  # when the request finished; orjson writes ISO 8601 with a Z
            "request_id": record.request_id, "client_request_id": record.client_request_id,
            "endpoint": record.endpoint, "route": record.route,
            "arm": record.arm, "target": record.target, "variant": record.variant, "status": record.status,
            "error": record.error_code, "stream": record.stream, "latency_ms": round(duration * 1000, 3),
            "overhead_ms": round(record.overhead_s() * 1000, 3),
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None,
            "usage_estimated": usage.estimated if usage else None,
            "cost_usd": record.cost_usd, "rag": record.rag, "score": record.score, "attempts": record.attempts,
            "rag_ms": round(record.rag_s * 1000, 3) if record.rag else None,
            "fallback": record.fallback or None, "experiment": record.experiment or None,
        }, option=orjson.OPT_UTC_Z) + b"\n")
        self._access.flush()
