"""A gateway for one evaluation run: the app in this process on a free loopback port, or one already running.

In-process mode builds the same app ``serve`` runs, from the same policy
directory, and starts the built-in demo upstream beside it when a policy
target uses it (as ``serve --demo auto`` does). Both modes are then driven
over HTTP by the same client, so there is one code path to trust; and both
wait for ``/readyz`` so the first example does not meet a knowledge store
still loading. The route's ``strategy`` is asked of the gateway too (``GET
/v1/routes``), since the gateway at ``--url`` may run other policies than
the local ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx

from gateway.demo_upstream.wanted import wants_demo
from gateway.edge.loopback import ServerThread
from policies import load_policies

_DEMO_URL = "HYBRID_GATEWAY_DEMO_URL"
_POLL_S = 0.1


class GatewayNotReady(RuntimeError):
    pass


def wait_ready(url: str, timeout_s: float) -> None:
    """Poll ``GET /readyz`` until it answers 200, at most ``timeout_s``."""
    pause, last = threading.Event(), "no answer"
    for _ in range(max(1, int(timeout_s / _POLL_S))):
        try:
            response = httpx.get(url.rstrip("/") + "/readyz", timeout=5)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}: {response.text[:300]}"
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
        pause.wait(_POLL_S)
    raise GatewayNotReady(f"{url} is not ready after {timeout_s:g} s: {last}")


def served_strategy(url: str, route: str, api_key: str | None) -> str | None:
    """The route's ``strategy`` as the gateway lists it; None when it does not say (a gateway from before the
    listing named it, a route it does not list, or a listing it will not give this key)."""
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(url.rstrip("/") + "/v1/routes", headers=headers, timeout=10)
        listed = response.json()["routes"] if response.status_code == 200 else []
    except (httpx.TransportError, ValueError, KeyError, TypeError):
        return None
    entry = next((e for e in listed if isinstance(e, dict) and e.get("route") == route), {})
    strategy = entry.get("strategy")
    return strategy if isinstance(strategy, str) else None


@contextlib.contextmanager
def _demo_if_needed(policies_dir: Path) -> Iterator[None]:
    """Start the demo upstream on a free port and point the policies at it, unless it is not needed or set."""
    if _DEMO_URL in os.environ or not wants_demo(load_policies(policies_dir)):
        yield
        return
    from gateway.demo_upstream import create_demo_app

    scale = float(os.environ.get("HYBRID_GATEWAY_DEMO_LATENCY_SCALE", "1.0"))
    demo = ServerThread(create_demo_app(scale)).start()
    os.environ[_DEMO_URL] = demo.url
    try:
        yield
    finally:
        del os.environ[_DEMO_URL]
        demo.stop()


@contextlib.contextmanager
def in_process_gateway(policies_dir: Path) -> Iterator[str]:
    """The gateway app (and the demo upstream when used) served on loopback; yields its base URL."""
    from gateway.app import create_app
    from gateway.settings import Settings

    settings = dataclasses.replace(Settings.from_env(), policies_dir=policies_dir, access_log=False)
    with _demo_if_needed(policies_dir):
        server = ServerThread(create_app(settings)).start()
        try:
            yield server.url
        finally:
            server.stop()
