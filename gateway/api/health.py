"""Liveness, readiness and the Prometheus scrape endpoint."""

from __future__ import annotations

import asyncio

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.common import state_of
from gateway.api.economics import refresh_gauges

_CHECK_TIMEOUT_S = 2.0


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def readyz(request: Request) -> Response:
    """Ready when policies are loaded and every registered dependency answers."""
    gateway = state_of(request)
    names = list(gateway.readiness)

    async def run(name: str) -> str | None:
        try:
            return await asyncio.wait_for(gateway.readiness[name](), _CHECK_TIMEOUT_S)
        except TimeoutError:
            return "timed out"

    results = await asyncio.gather(*(run(name) for name in names))
    checks = {name: problem or "ok" for name, problem in zip(names, results, strict=True)}
    checks["policies"] = f"ok ({gateway.policies.current.fingerprint})"
    ready = all(problem is None for problem in results)
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    return Response(orjson.dumps(body), status_code=200 if ready else 503, media_type="application/json")


async def metrics(request: Request) -> Response:
    gateway = state_of(request)
    await refresh_gauges(gateway)
    gateway.attempts.export_breaker_states()
    return Response(gateway.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
