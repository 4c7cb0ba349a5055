"""Liveness, readiness and the Prometheus scrape endpoint.

Probes stay open; ``/metrics`` needs a client key when keys are configured (Prometheus sends one
as a bearer token) unless ``HYBRID_GATEWAY_MONITORING_NEEDS_KEY=0``.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.common import state_of
from gateway.api.economics import refresh_gauges
from gateway.errors import json_response
from gateway.pipeline.intake import authenticate_monitoring

_CHECK_TIMEOUT_S = 2.0


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def readyz(request: Request) -> Response:
    """503 until policies are loaded and every dependency has answered once; then 200, ``degraded`` in outages.

    A replica that has never reached Redis or the knowledge store should not take traffic yet.
    Once it has, losing one of them is a degraded mode the gateway serves through (local state,
    answers without context): failing readiness then would empty the Service on every replica
    at once, since they all share those dependencies, and turn a degradation into an outage.
    """
    gateway = state_of(request)
    names = list(gateway.readiness)

    async def run(name: str) -> str | None:
        try:
            return await asyncio.wait_for(gateway.readiness[name].check(), _CHECK_TIMEOUT_S)
        except TimeoutError:
            return "timed out"

    results = await asyncio.gather(*(run(name) for name in names))
    checks = {name: problem or "ok" for name, problem in zip(names, results, strict=True)}
    checks["policies"] = f"ok ({gateway.policies.current.fingerprint})"
    failing = [name for name, problem in zip(names, results, strict=True) if problem is not None]
    ready = all(gateway.readiness[name].reached() for name in failing)
    status = "not_ready" if not ready else "degraded" if failing else "ready"
    return json_response({"status": status, "checks": checks}, 200 if ready else 503)


async def metrics(request: Request) -> Response:
    gateway = state_of(request)
    authenticate_monitoring(request, gateway.settings)
    await refresh_gauges(gateway)
    gateway.attempts.export_breaker_states()
    gateway.chooser.export_gauges(gateway.policies.current)
    return Response(gateway.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


endpoints = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
