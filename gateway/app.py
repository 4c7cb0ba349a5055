"""The ASGI application: endpoints, error rendering and the runtime built in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from gateway.accounting.cluster_ledger import ClusterLedger
from gateway.accounting.ledger import Ledger
from gateway.accounting.traffic_window import Grid
from gateway.accounting.window_store import SqliteWindowStore
from gateway.api import docs_page, endpoints, hot_endpoints
from gateway.api.openapi import document
from gateway.capture import CapturePolicy, CaptureStore, CaptureWriter
from gateway.edge.guard import EdgeGuard
from gateway.edge.hot_routes import HotRoutes
from gateway.edge_settings import EdgeSettings
from gateway.errors import (
    GatewayError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    error_response,
)
from gateway.keys import KeyCounters, KeyGate, LocalCounters, RedisCounters
from gateway.metrics import Metrics
from gateway.model_check import model_problem
from gateway.pipeline.arm_choice import ArmChooser
from gateway.pipeline.attempts import AttemptRunner
from gateway.pipeline.experiments import OutcomeRecorder
from gateway.pipeline.grounding import KnowledgeService
from gateway.pipeline.score_sharing import ScoreSharing
from gateway.pipeline.shadow import ShadowRunner
from gateway.response_cache import ResponseCache
from gateway.settings import Settings
from gateway.state import Dependency, GatewayState, ReadinessCheck
from gateway.upstream import Upstreams, http1, warm_up
from policies import PolicyHolder, PolicySet, SharedState, breaker_board, outcome_store

log = logging.getLogger("hybrid_gateway")
_PROBE_BYTES = 1024 * 1024


def _demo_check(policy: PolicySet) -> str | None:
    """The first demo upstream's base URL, which readiness probes; None when no route uses one."""
    bases = sorted({t.api_base for t in policy.targets.values() if t.provider == "demo" and t.api_base})
    return bases[0] if bases else None


def _readiness_of_demo(base: str) -> ReadinessCheck:
    origin = http1.origin_of(f"{base}/models")

    async def check() -> str | None:
        pool = http1.Pool(limit=1, idle_s=0)  # one connection per probe, closed after it
        try:
            response = await pool.request(origin, http1.encode(b"GET", origin, b""), body_limit=_PROBE_BYTES,
                                          total_s=None, quiet_s=None, connect_s=None)  # /readyz times checks
            response.release()
            return None if response.status == 200 else f"HTTP {response.status}"
        except (http1.ConnectFailed, http1.ConnectionBroken) as exc:
            return f"unreachable: {type(exc).__name__}"
        finally:
            pool.close()
    return check


def _shared_state(settings: Settings, metrics: Metrics) -> SharedState:
    def changed(up: bool) -> None:
        metrics.redis_up.set(1 if up else 0)
        metrics.redis_transitions.labels("up" if up else "down").inc()
        (log.info if up else log.warning)("redis %s", "is back: shared state resynced" if up else
                                          "is unreachable: serving with local state")
    shared = SharedState.connect(settings.redis_url, prefix=settings.redis_prefix, on_change=changed)
    # Configured Redis counts as up until a call or the startup probe says otherwise (a transition).
    metrics.redis_up.set(1 if shared.enabled else 0)
    return shared


def _runtime(settings: Settings, clock: Callable[[], float]) -> GatewayState:
    """Every long-lived object of one app instance, wired together before the state is made."""
    metrics = Metrics()
    policies = PolicyHolder(settings.policies_dir, on_reload=lambda result: metrics.policy_reloads.labels(result).inc(),
                            check_model=model_problem)
    shared = _shared_state(settings, metrics)
    outcomes = OutcomeRecorder(outcome_store(shared, settings.data_dir / "experiments"))
    cluster = ClusterLedger(shared, Grid(settings.economics.window_s), clock) if shared.enabled else None
    window = cluster or SqliteWindowStore(settings.data_dir, settings.economics.window_s, clock)
    capture = CapturePolicy(policies)
    captures = CaptureWriter(lambda: CaptureStore.open(settings.database_url, settings.data_dir), capture.redactor,
                             capture.retention_days, capture.wanted, metrics)
    counters: KeyCounters = (RedisCounters(shared, metrics.key_limit_local.inc) if shared.enabled
                             else LocalCounters(settings.data_dir))
    keys = KeyGate(counters, clock)
    ledger = Ledger(metrics, sys.stdout.buffer if settings.access_log else None,
                    hooks=(outcomes, window, captures, keys))
    chooser = ArmChooser(settings.policies_dir, metrics)
    chooser.warm(policies.current)
    upstreams = Upstreams(settings.limits.max_upstream_reply_bytes)
    knowledge = KnowledgeService(settings.data_dir, settings.chroma_url, metrics)
    readiness = {"knowledge": Dependency(knowledge.readiness, lambda: knowledge.reached)}
    demo = _demo_check(policies.current)
    if demo is not None:
        readiness["demo_upstream"] = Dependency(_readiness_of_demo(demo))
    if shared.enabled:
        readiness["redis"] = Dependency(_readiness_of_redis(shared), lambda: shared.reached)
    return GatewayState(settings, policies, upstreams, metrics, ledger, knowledge,
                        AttemptRunner(metrics, breaker_board(shared)), chooser, outcomes, shared,
                        ShadowRunner(metrics, upstreams), window, readiness, capture, captures, keys,
                        ResponseCache(shared, clock), cluster)


def _readiness_of_redis(shared: SharedState) -> ReadinessCheck:
    async def check() -> str | None:
        # Not ready without Redis: a replica that cannot share state should not take new traffic.
        return None if shared.available or await shared.probe() else "unreachable: serving with local state"
    return check


async def _watch_keys(settings: Settings, metrics: Metrics) -> None:
    """Re-read a changed keys file every reload interval (``gateway.client_keys``); runs until cancelled."""
    if settings.api_keys_file is None:
        return
    while True:
        await asyncio.sleep(settings.reload_interval_s)
        result = await asyncio.to_thread(settings.client_keys.reload)
        if result is not None:
            metrics.keys_reloads.labels("success" if result else "failure").inc()


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    gateway = _runtime(settings, app.state.clock)
    app.state.gateway = gateway
    policies = gateway.policies
    if gateway.shared.enabled:
        await gateway.shared.probe()
    gateway.captures.start()
    tasks = [asyncio.create_task(policies.watch(settings.reload_interval_s), name="policy-watch"),
             asyncio.create_task(_watch_keys(settings, gateway.metrics), name="keys-watch"),
             asyncio.create_task(gateway.knowledge.start(policies.current), name="knowledge-start")]
    if any(not t.openai_compatible for t in policies.current.targets.values()):
        tasks.append(asyncio.create_task(warm_up(), name="litellm-warm-up"))
    if gateway.shared.enabled:  # replicas hold each route's share on one merged score estimate
        tasks.append(asyncio.create_task(ScoreSharing(gateway.shared, gateway.chooser).run(), name="score-sharing"))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await gateway.outcomes.drain()
        await gateway.shadow.drain()
        await gateway.cache.drain()
        await gateway.window.aclose()
        await gateway.keys.aclose()
        await asyncio.to_thread(gateway.captures.close)
        await gateway.upstreams.aclose()
        await gateway.shared.aclose()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(NotFound(f"No such endpoint: {request.method} {request.url.path}"))
    if exc.status_code == 405:
        return error_response(MethodNotAllowed(f"Method {request.method} is not allowed on {request.url.path}."))
    return error_response(GatewayError(str(exc.detail), status=exc.status_code, code="http_error"))


async def _invalid(request: Request, exc: Exception) -> Response:
    """FastAPI's own validation (an ``APIRoute`` with typed parameters) in OpenAI's envelope, not its 422."""
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    param = ".".join(str(part) for part in first["loc"][1:]) or None  # without "body", "query", ...
    return error_response(InvalidRequest(f"Invalid request: {param or 'request'}: {first['msg']}", param=param,
                                         code="invalid_parameter"))


async def _unhandled(request: Request, exc: Exception) -> Response:
    return error_response(InternalError("The gateway failed to handle the request."))


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc)


class _GatewayApp(FastAPI):
    """FastAPI with the edge guard outermost and the OpenAI traffic's endpoints past the framework's stack."""

    def __init__(self, *, edge: EdgeSettings, **kwargs: Any) -> None:
        self._edge = edge
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return EdgeGuard(HotRoutes(stack, hot_endpoints, self.exception_handlers), self._edge)


def create_app(settings: Settings | None = None, *, clock: Callable[[], float] = time.time) -> FastAPI:
    """The gateway app: FastAPI for the OpenAPI document (``/openapi.json``, ``/docs``), plain routes to serve.

    Every endpoint is a plain Starlette route taking the raw request (no per-request dependency
    solving or response serialisation); ``gateway.api.openapi`` describes them, built on the first
    ``/openapi.json``. FastAPI's native OpenTelemetry hooks are off: the gateway exports its own metrics.

    ``clock`` (epoch seconds) times the economics window; tests pass a fake one to move through it.
    """
    settings = settings or Settings.from_env()
    app = _GatewayApp(edge=settings.edge, routes=[*endpoints], lifespan=_lifespan,
                      exception_handlers={HTTPException: _http_error, RequestValidationError: _invalid,
                                          GatewayError: _gateway_error, Exception: _unhandled},
                      docs_url=None, redoc_url=None, telemetry={"tracing": False, "metrics": False, "logs": False})

    def openapi() -> dict[str, Any]:
        if not app.openapi_schema:
            app.openapi_schema = document(endpoints)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to supply the document
    app.router.routes.extend(docs_page.endpoints)  # served, not described: the page of the document itself
    app.state.settings = settings
    app.state.clock = clock
    return app
