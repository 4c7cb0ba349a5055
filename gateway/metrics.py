"""Every Prometheus metric of the gateway, declared once, with bounded labels.

Labels are policy names (route, arm, target, variant) and outcome classes,
never a user, key or request id. Each app gets its own registry so tests can
build many apps; with several uvicorn workers, prometheus-client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) merges the workers' files at
scrape time.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_OVERHEAD = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
REQUEST_LABELS = ("route", "arm", "target", "variant")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("gateway_requests", "Completed chat requests by outcome.",
                                (*REQUEST_LABELS, "status"), registry=r)
        self.request_duration = Histogram("gateway_request_duration_seconds",
                                          "Request duration as the client saw it.", REQUEST_LABELS,
                                          buckets=_LATENCY, registry=r)
        self.ttft = Histogram("gateway_time_to_first_token_seconds", "Time to the first streamed byte.",
                              REQUEST_LABELS, buckets=_LATENCY, registry=r)
        self.upstream_duration = Histogram("gateway_upstream_duration_seconds", "Time spent waiting on upstreams.",
                                           ("target",), buckets=_LATENCY, registry=r)
        self.overhead = Histogram("gateway_overhead_seconds", "Time the gateway itself added to a request.",
                                  ("route",), buckets=_OVERHEAD, registry=r)
        self.tokens = Counter("gateway_tokens", "Tokens by direction (input, output).",
                              (*REQUEST_LABELS, "direction"), registry=r)
        self.cost = Counter("gateway_cost_usd", "Upstream cost in USD.", REQUEST_LABELS, registry=r)
        self.unpriced = Counter("gateway_unpriced_requests", "Requests with tokens but no known price.",
                                ("target",), registry=r)
        self.estimated_usage = Counter("gateway_estimated_usage_requests",
                                       "Requests whose upstream reported no usage, counted locally.",
                                       ("target",), registry=r)
        self.errors = Counter("gateway_errors", "Requests answered with an error, by code.",
                              ("route", "code"), registry=r)
        self.rag_requests = Counter("gateway_rag_requests", "Retrievals by result (hit, miss, unavailable).",
                                    ("route", "result"), registry=r)
        self.rag_duration = Histogram("gateway_rag_retrieval_seconds", "Retrieval time (embed and search).",
                                      ("route",), buckets=_LATENCY, registry=r)
        self.policy_reloads = Counter("gateway_policy_reloads", "Policy reloads by result.", ("result",),
                                      registry=r)

    def exposition(self) -> bytes:
        """The text format of every metric; merged across workers in multiprocess mode."""
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            merged = CollectorRegistry()
            MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)
