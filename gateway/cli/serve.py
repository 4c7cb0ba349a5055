"""Start the gateway: check settings and policies, start the demo upstream if needed, run uvicorn workers.

Settings reach worker processes through ``HYBRID_GATEWAY_*`` variables, so a
single worker and N workers build the same app. The demo upstream runs as a
child process on loopback, started first and waited for while the app's
modules import, so the first request already finds it.

Secure by default: listening beyond loopback without client keys is refused
unless asked for (``--allow-unauthenticated``), and then said loudly in the log;
bound to loopback, only loopback Host names are answered (DNS rebinding).
"""

from __future__ import annotations

import atexit
import ipaddress
import logging.config
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from gateway.demo_upstream.wanted import wants_demo
from gateway.model_check import model_problem
from gateway.settings import Settings
from policies import PolicyLoadError, load_policies

_DEMO_START_TIMEOUT_S = 15.0
_SignalHandler: TypeAlias = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None
"""What ``signal.getsignal`` returns and ``signal.signal`` takes back."""


def _log_config(level: str) -> dict[str, object]:
    """Plain log lines on stderr; the access log (JSON lines on stdout) is written by the ledger."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
        "loggers": {
            "hybrid_gateway": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
        },
    }


def _free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _any_free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_demo(port: int) -> subprocess.Popen[bytes]:
    child = subprocess.Popen([sys.executable, "-m", "gateway.cli", "demo-upstream", "--port", str(port)])
    _end_with_us(child)
    return child


def _end_with_us(child: subprocess.Popen[bytes]) -> None:
    """Terminate ``child`` when this process ends, normally or by SIGTERM/SIGINT.

    atexit alone is not enough: after its graceful shutdown uvicorn restores the handlers it
    found and re-raises the signal, and the default SIGTERM action ends the process without
    running atexit, which would orphan the demo upstream. These handlers are what it finds.
    """
    atexit.register(child.terminate)
    for number in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(number)

        def stop(signum: int, frame: FrameType | None, previous: _SignalHandler = previous) -> None:
            child.terminate()
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)  # None: set outside Python
            signal.raise_signal(signum)

        signal.signal(number, stop)


def _wait_for_port(port: int, child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _DEMO_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"the demo upstream exited with code {child.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"the demo upstream did not listen on port {port} within {_DEMO_START_TIMEOUT_S:.0f} s")


def _multiprocess_metrics(workers: int) -> None:
    """Give workers a shared directory for prometheus-client's multiprocess mode."""
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        directory = tempfile.mkdtemp(prefix="hybrid-gateway-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        atexit.register(shutil.rmtree, directory, True)


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_problem(host: str, settings: Settings) -> str | None:
    """Why the gateway must not start on ``host`` with ``settings``; None when it may."""
    if is_loopback(host) or settings.api_key_digests or settings.edge.allow_unauthenticated:
        return None
    return (f"refusing to listen on {host} without client keys: anyone who reaches it could spend your provider "
            "credits. Set HYBRID_GATEWAY_API_KEYS or HYBRID_GATEWAY_API_KEYS_FILE, listen on 127.0.0.1, or pass "
            "--allow-unauthenticated (HYBRID_GATEWAY_ALLOW_UNAUTHENTICATED=1) if something in front of the "
            "gateway authenticates its clients.")


def _settings(host: str, allow_unauthenticated: bool) -> Settings:
    """The settings every worker will build, checked once here so a bad one stops the start with a message."""
    if allow_unauthenticated:
        os.environ["HYBRID_GATEWAY_ALLOW_UNAUTHENTICATED"] = "1"
    if not is_loopback(host):  # names a non-loopback gateway answers to are the operator's to list
        os.environ.setdefault("HYBRID_GATEWAY_ALLOWED_HOSTS", "*")
    settings = Settings.from_env()
    problem = exposure_problem(host, settings)
    if problem is not None:
        raise ValueError(problem)
    return settings


def serve(*, host: str, port: int, policies: Path, workers: int, demo: str, demo_port: int, log_level: str,
          allow_unauthenticated: bool = False) -> int:
    os.environ["HYBRID_GATEWAY_POLICIES"] = str(policies.resolve())
    try:
        settings = _settings(host, allow_unauthenticated)
    except ValueError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 2
    start_demo = demo == "on"
    child = None
    if demo != "off":
        port_for_demo = demo_port if _free(demo_port) else _any_free_port()
        os.environ.setdefault("HYBRID_GATEWAY_DEMO_URL", f"http://127.0.0.1:{port_for_demo}")
    try:
        policy = load_policies(policies, model_problem)
    except PolicyLoadError as exc:
        # One line per problem, each naming file:line: the whole story, no traceback.
        for issue in exc.issues:
            print(f"cannot start: {issue}", file=sys.stderr)
        return 2
    start_demo = start_demo or (demo == "auto" and wants_demo(policy))
    if start_demo:
        child = _start_demo(int(urlsplit(os.environ["HYBRID_GATEWAY_DEMO_URL"]).port or 8090))
    _multiprocess_metrics(workers)
    import uvicorn  # imported while the demo upstream starts

    import gateway.app  # noqa: F401  (warms the import before uvicorn needs it)

    if child is not None:
        _wait_for_port(int(urlsplit(os.environ["HYBRID_GATEWAY_DEMO_URL"]).port or 8090), child)
    from gateway.edge.http_protocol import GuardedHttpToolsProtocol

    logging.config.dictConfig(_log_config(log_level))
    if not is_loopback(host) and not settings.api_key_digests:
        logging.getLogger("hybrid_gateway").warning(
            "SECURITY: listening on %s:%d with NO client authentication (--allow-unauthenticated): anyone who "
            "can reach this address can use the gateway and the provider keys behind it", host, port)
    uvicorn.run("gateway.app:create_app", factory=True, host=host, port=port, workers=workers, loop="uvloop",
                http=GuardedHttpToolsProtocol, access_log=False, log_config=_log_config(log_level),
                log_level=log_level, timeout_graceful_shutdown=10)
    return 0
