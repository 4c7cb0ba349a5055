"""Every Prometheus metric of the gateway, declared once, with bounded labels.

Labels are policy names (route, arm, target, variant), outcome classes and
the names of the keys file's named keys (configuration: a client cannot add
one), never a user, a key itself or a request id. Each app gets its own registry so tests can
build many apps; with several uvicorn workers, prometheus-client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) merges the workers' files at
scrape time.
"""

from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

# LLM latencies live between a quarter second and half a minute: there each bucket is at most 1.5x the
# one below, so a percentile interpolated inside one (dashboard, Grafana, alerts) stays within ~10% of
# the truth (tests/gateway/test_metrics_buckets.py); a 2.5-5 s bucket once showed a 2.54 s p95 as 4.39 s.
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.35, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0,
            8.0, 10.0, 12.5, 15.0, 20.0, 25.0, 30.0, 45.0, 60.0, 120.0)
_OVERHEAD = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
REQUEST_LABELS = ("route", "arm", "target", "variant")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.started = time.time()  # the start of the window the counters cover
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
        self.retries = Counter("gateway_retries", "Upstream attempts retried, by target and reason.",
                               ("target", "reason"), registry=r)
        self.retries_skipped = Counter("gateway_retries_skipped", "Retries not taken because their wait would "
                                       "outlast the route's deadline (the chain moves on at once), by target and "
                                       "reason.", ("target", "reason"), registry=r)
        self.fallbacks = Counter("gateway_fallbacks", "Moves to the next plan of a fallback chain.",
                                 ("route", "from_target", "to_target", "reason"), registry=r)
        self.cascades = Counter("gateway_cascade", "Requests a cascade route sent to its fine-tuned arm first, by "
                                "outcome: accepted, escalated (the prompted arm answered), kept (the prompted "
                                "arm failed, the rejected answer was returned).", ("route", "outcome"), registry=r)
        self.cascade_rejections = Counter("gateway_cascade_rejections", "Fine-tuned answers a cascade rejected, by "
                                          "the acceptor that rejected them ('error': the call failed).",
                                          ("route", "acceptor"), registry=r)
        self.cache_lookups = Counter("gateway_cache_lookups", "Response cache lookups of requests a route may "
                                     "cache, by result (hit, miss).", ("route", "result"), registry=r)
        self.cache_saved = Counter("gateway_cache_saved_usd", "What cache hits' answers cost when they were paid "
                                   "for: spent once, served again for nothing.", ("route",), registry=r)
        self.ensembles = Counter("gateway_ensemble", "Requests an ensemble route sent to both arms, by the arm "
                                 "whose answer was returned ('failed': no candidate answered).", ("route", "outcome"),
                                 registry=r)
        self.decisions = Counter("gateway_classifier_decisions", "Arms chosen by the complexity classifier; "
                                 "kind is 'scored' or 'unjudged' (low-confidence rule).", ("route", "arm", "kind"),
                                 registry=r)
        self.scores = Histogram("gateway_classifier_score", "Complexity scores (need for the prompted arm).",
                                ("route",), buckets=tuple(i / 10 for i in range(1, 11)), registry=r)
        self.classifier_threshold = Gauge(
            "gateway_classifier_threshold", "The threshold a classifier route decides against now (for strong_share: "
            "the live one, calibrated on the route's recent scores).", ("route",), registry=r,
            multiprocess_mode="mostrecent")
        self.classifier_prompted_share = Gauge(
            "gateway_classifier_prompted_share", "Share of the scored decisions in the calibration window that went "
            "to the prompted arm (NaN before any).", ("route",), registry=r, multiprocess_mode="mostrecent")
        self.classifier_strong_share = Gauge(
            "gateway_classifier_strong_share", "The route's strong_share target (NaN for a fixed threshold).",
            ("route",), registry=r, multiprocess_mode="mostrecent")
        self.errors = Counter("gateway_errors", "Requests answered with an error, by code.",
                              ("route", "code"), registry=r)
        self.rag_requests = Counter("gateway_rag_requests", "Retrievals by result (hit, miss; timeout and "
                                    "unavailable answered without context).",
                                    ("route", "result"), registry=r)
        self.rag_duration = Histogram("gateway_rag_retrieval_seconds", "Time retrieval added to a request "
                                      "(queue wait, embedding, search; timeouts included).",
                                      ("route",), buckets=_LATENCY, registry=r)
        self.shadow_requests = Counter("gateway_shadow_requests", "Mirrored requests by status ('dropped' when "
                                       "too many were in flight).", ("route", "target", "status"), registry=r)
        self.shadow_duration = Histogram("gateway_shadow_duration_seconds", "Latency of mirrored requests.",
                                         ("route", "target"), buckets=_LATENCY, registry=r)
        self.shadow_tokens = Counter("gateway_shadow_tokens", "Tokens of mirrored requests by direction.",
                                     ("route", "target", "direction"), registry=r)
        self.shadow_cost = Counter("gateway_shadow_cost_usd", "Cost of mirrored requests.", ("route", "target"),
                                   registry=r)
        self.economics = Gauge("gateway_economics", "The live break-even view per route (see /v1/economics): "
                               "quantity is one of its numeric fields (e.g. months_to_break_even, window_start), "
                               "enough_traffic (1/0) or missing_requests/_seconds/_prompted_requests; a figure "
                               "the evidence cannot support yet is absent.",
                               ("route", "quantity"), registry=r, multiprocess_mode="mostrecent")
        self.key_requests = Counter("gateway_key_requests", "Requests by named client key (the keys file's names) "
                                    "and status.", ("key", "status"), registry=r)
        self.key_tokens = Counter("gateway_key_tokens", "Tokens by named client key and direction (input, output), "
                                  "a cascade's paid calls included.", ("key", "direction"), registry=r)
        self.key_spend = Counter("gateway_key_spend_usd", "Upstream cost in USD by named client key: what its "
                                 "requests' x-gateway-cost-usd add up to, and its monthly budget counts.", ("key",),
                                 registry=r)
        self.key_limit_local = Counter("gateway_key_limit_local_decisions", "Key limit decisions this replica made "
                                       "on its own state because Redis was unreachable (each replica then enforces "
                                       "the limits alone).", registry=r)
        self.redis_transitions = Counter("gateway_redis_transitions", "Redis went down or came back (state).",
                                         ("state",), registry=r)
        self.redis_up = Gauge("gateway_redis_up", "1 while Redis answers, 0 while the gateway runs on local state.",
                              registry=r, multiprocess_mode="livemin")
        self.circuit_state = Gauge("gateway_circuit_open", "1 while a target's circuit breaker is open or half-open.",
                                   ("target",), registry=r, multiprocess_mode="livemax")
        self.policy_reloads = Counter("gateway_policy_reloads", "Policy reloads by result.", ("result",),
                                      registry=r)
        self.keys_reloads = Counter("gateway_keys_reloads", "Re-reads of a changed keys file: success, or failure "
                                    "(the keys in force stay).", ("result",), registry=r)
        self.refused = Counter("gateway_refused_requests", "Requests refused before any endpoint ran, by reason "
                               "('host': Host header not allowed, 'overloaded': concurrency limit).", ("reason",),
                               registry=r)
        self.feedback_score = Summary("gateway_feedback_score", "Feedback scores on requests (POST /v1/feedback), "
                                      "by the route and arm that answered them.", ("route", "arm"), registry=r)
        self.feedback_success = Counter("gateway_feedback_success", "Feedback given as success true/false.",
                                        ("route", "arm", "success"), registry=r)
        self.retraining = Gauge("gateway_retraining", "When a route's fine-tune is due for retraining: quantity is "
                                "model_age_months (of its fine-tuned target's trained_at), every_months, due (1/0) "
                                "quality_baseline and quality_drop_alert (what the quality alert holds the arm to).", ("route", "quantity"),
                                registry=r, multiprocess_mode="mostrecent")
        self.captures = Counter("gateway_captures", "Captured requests by result ('stored'; dropped: 'queue_full', "
                                "'too_large', 'unreadable', 'lost_at_stop'; 'store_error': a batch the store refused, tried again).",
                                ("result",), registry=r)
        self.capture_queue = Gauge("gateway_capture_queue_depth", "Captured requests waiting for the writer.",
                                   registry=r, multiprocess_mode="livesum")
        self.captures_deleted = Counter("gateway_captures_deleted", "Captures deleted by retention.", ("route",),
                                        registry=r)

    def exposition(self) -> bytes:
        """The text format of every metric; merged across workers in multiprocess mode."""
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            merged = CollectorRegistry()
            MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)
