"""CPU per request of the app's own ASGI stack: the FastAPI app vs the same routes on a bare Starlette app.

``create_app`` returns a FastAPI app for its OpenAPI document, while every
endpoint stays a plain Starlette route; what FastAPI can still add per request
is its application call and middleware layers. This measures exactly that,
in-process and without sockets, so the figure is stable on a shared machine
where bench/overhead.py's end-to-end CPU per request swings by 10-20%: the
same routes, middleware and exception handlers are called with a GET /healthz
(the cheapest route: the stack is most of its cost) and an unknown path (a
404 through the exception handlers).

    .venv/bin/python bench/asgi_overhead.py [--requests N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message

from gateway.api import endpoints
from gateway.app import create_app
from gateway.settings import Settings


def _scope(path: str) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
            "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
            "headers": [(b"host", b"127.0.0.1:8080")], "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080)}


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Message) -> None:
    return None


async def _cpu_us(app: ASGIApp, path: str, requests: int) -> float:
    scope = _scope(path)
    began = time.process_time()
    for _ in range(requests):
        await app(dict(scope), _receive, _send)
    return (time.process_time() - began) / requests * 1e6


async def run(requests: int, rounds: int) -> dict[str, dict[str, float]]:
    fast = create_app(Settings())
    bare = Starlette(routes=endpoints, middleware=fast.user_middleware, exception_handlers=fast.exception_handlers)
    apps = {"fastapi": fast, "starlette": bare}
    samples: dict[str, dict[str, list[float]]] = {name: {"/healthz": [], "/no-such-path": []} for name in apps}
    for app in apps.values():  # warm both
        await _cpu_us(app, "/healthz", requests // 10)
    for _ in range(rounds):  # interleaved, so drift hits both alike
        for name, app in apps.items():
            for path in samples[name]:
                samples[name][path].append(await _cpu_us(app, path, requests))
    return {name: {path: statistics.median(values) for path, values in paths.items()}
            for name, paths in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="requests per measurement")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    result = asyncio.run(run(args.requests, args.rounds))
    print("| app | GET /healthz µs CPU | 404 µs CPU |\n|---|---|---|")
    for name, paths in result.items():
        print(f"| {name} | {paths['/healthz']:.2f} | {paths['/no-such-path']:.2f} |")
    added = result["fastapi"]["/healthz"] - result["starlette"]["/healthz"]
    print(f"\n- FastAPI adds {added:.2f} µs CPU per request (median of {args.rounds} rounds of {args.requests})")


if __name__ == "__main__":
    main()
