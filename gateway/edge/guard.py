"""The one ASGI middleware: the Host allowlist and the per-process concurrency limit.

A pure ASGI class rather than Starlette's ``BaseHTTPMiddleware``: it wraps the
app call itself, without a task or a body queue per request, so the hot path
pays one header scan, a set lookup and two integer updates.

Host names outside the allowlist are refused with 421: a page that rebinds its
own DNS name to a gateway's address (DNS rebinding) gets the browser to send
the gateway requests, but with the page's name in the Host header. IP literals
are always accepted, because such a page can only ever be reached by a name,
and because probes and scrapers address pods by IP.

Over ``max_concurrency`` requests in flight (streams included), a request is
answered 503 ``overloaded`` with ``retry-after`` at once instead of queueing
without bound; probes and ``/metrics`` are never refused, so a busy process
is neither restarted nor unobservable.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.edge_settings import EdgeSettings
from gateway.errors import GatewayError, MisdirectedRequest, Overloaded, error_response

_UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
RETRY_AFTER_S = "1"
_VERDICTS_KEPT = 1024  # distinct Host values remembered; a flood of made-up ones only clears the memo


def host_name(header: bytes) -> str:
    """The name of a Host header, without port or IPv6 brackets, lower case."""
    text = header.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1:text.find("]")] if "]" in text else text
    return text.rpartition(":")[0] if text.count(":") == 1 else text


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(header: bytes | None, allowed: frozenset[str]) -> bool:
    if header is None:
        return False
    name = host_name(header).rstrip(".")
    if name in allowed or _is_ip(name):
        return True
    parent = name.partition(".")[2]
    return bool(parent) and f"*.{parent}" in allowed


class EdgeGuard:
    def __init__(self, app: ASGIApp, edge: EdgeSettings) -> None:
        self.app = app
        self.hosts = edge.allowed_hosts
        self.limit = edge.max_concurrency
        self.in_flight = 0
        self._verdicts: dict[bytes | None, bool] = {}  # Host header -> allowed: a lookup instead of a parse

    def _host_allowed(self, header: bytes | None, hosts: frozenset[str]) -> bool:
        verdict = self._verdicts.get(header)
        if verdict is None:
            if len(self._verdicts) >= _VERDICTS_KEPT:
                self._verdicts.clear()
            verdict = self._verdicts[header] = host_allowed(header, hosts)
        return verdict

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.hosts is not None:
            host = next((value for name, value in scope["headers"] if name == b"host"), None)
            if not self._host_allowed(host, self.hosts):
                shown = host.decode("latin-1")[:100] if host is not None else "none"
                await self._refuse(scope, receive, send, MisdirectedRequest(
                    f"Host {shown!r} is not served here: add it to HYBRID_GATEWAY_ALLOWED_HOSTS.", param="host"),
                    "host")
                return
        if self.limit and self.in_flight >= self.limit and scope["path"] not in _UNLIMITED_PATHS:
            await self._refuse(scope, receive, send, Overloaded(
                f"The gateway is at its limit of {self.limit} concurrent requests; retry shortly.",
                headers={"retry-after": RETRY_AFTER_S}), "overloaded")
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, error: GatewayError, reason: str) -> None:
        app: Any = scope.get("app")
        gateway = getattr(app.state, "gateway", None) if app is not None else None
        if gateway is not None:
            gateway.metrics.refused.labels(reason).inc()
        await error_response(error)(scope, receive, send)
