"""Soak: a fixed request rate for 30 minutes against the embedded default with Redis; memory and counts must hold.

Leaks and accounting drift do not show in a minute-long bench or a test: a few
bytes kept per request, or a ledger entry lost (or written twice) when an
upstream fails mid-way, only add up over tens of thousands of requests. This
bench holds an open-loop rate (requests are sent on schedule whether or not
earlier ones have answered, so a slow gateway cannot slow the load down) of
mixed JSON and streamed chat completions on the shipped ``support`` route, plus
a few embeddings, for ``--duration-s``, with failures injected at the upstream.

Set-up: the shipped policies, embedded Chroma, a fresh data directory and the
shared Redis at 127.0.0.1:6379 under a unique key prefix (deleted afterwards).
The demo upstream (full simulated latency) runs as its own process behind a
small failure-injecting proxy in this process: a ``--failure-share`` of chat
and embedding calls is answered 429 or 500 without reaching it, so the
fine-tuned arm's fallback and the error paths run all along. The targets reach
the proxy through ``HYBRID_GATEWAY_DEMO_URL`` (``serve --demo off``).

Every minute it prints the gateway's RSS and the demo upstream's, requests
sent, answered by status, client-side errors and the cluster ledger's request
total. It passes when the gateway's RSS grows under 5% over the last 20 minutes
(the last two thirds of a shorter run), no request is lost (sent, yet neither
answered nor failed at the client) and the ledger's increase equals the
client's count of complete 200s exactly.

    .venv/bin/python bench/soak.py [--duration-s 1800] [--rate 15] [--stream-share 0.4] \\
        [--failure-share 0.05] [--out soak.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import redis
from aiohttp import web
from overhead import BIN, ROOT, System, free_port, start, stop  # bench/ is the script's directory
from prometheus_client.parser import text_string_to_metric_families
from rag_load import questions, wait_for_knowledge

REDIS_URL = "redis://127.0.0.1:6379/0"
EMBEDDING_SHARE = 0.05
FLAT_WINDOW_S = 1200.0
MAX_GROWTH = 0.05
REQUEST_TIMEOUT_S = 120.0
_FAILURES = ((429, "rate_limit_exceeded", "Rate limit reached (injected by bench/soak.py)."),
             (500, "server_error", "The server had an error (injected by bench/soak.py)."))


class FailingProxy:
    """Forwards to the demo upstream, answering a share of model calls 429 or 500 itself.

    It runs its own event loop in a thread so it serves while the bench waits
    synchronously for the gateway to start; injection starts only when
    ``share`` is set, after the warm-up.
    """

    def __init__(self, upstream: str, seed: int) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.share = 0.0
        self.injected: Counter[int] = Counter()
        self.forwarded = 0
        self.abandoned: Counter[str] = Counter()  # forwarded answers the gateway hung up on before their end
        self._rng = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="failing-proxy", daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FailingProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the failure-injecting proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=15)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._open())
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _open(self) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _close(self) -> None:
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        if request.path in ("/v1/chat/completions", "/v1/embeddings") and self._rng.random() < self.share:
            status, code, message = self._rng.choice(_FAILURES)
            self.injected[status] += 1
            return web.json_response({"error": {"message": message, "type": code, "param": None, "code": code}},
                                     status=status)
        self.forwarded += 1
        headers = {"content-type": request.headers.get("content-type", "application/json")}
        reply = web.StreamResponse()
        try:
            async with self._session.request(request.method, self.upstream + request.path_qs, data=body,
                                             headers=headers) as upstream:
                reply.set_status(upstream.status)
                reply.content_type = upstream.headers.get("content-type", "application/json").split(";")[0]
                await reply.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await reply.write(chunk)
                await reply.write_eof()
        except ConnectionResetError:
            self.abandoned[request.path] += 1
            print(f"{time.strftime('%H:%M:%S')} the gateway hung up during {request.method} {request.path_qs}",
                  file=sys.stderr, flush=True)
        return reply


@dataclass
class Tally:
    """The client's account of every request it sent."""

    sent: int = 0
    ok: int = 0  # 200 and, for a stream, complete up to [DONE]
    answered: Counter[str] = field(default_factory=Counter)  # "<kind> <status>"
    client_errors: Counter[str] = field(default_factory=Counter)  # exception type, or an incomplete stream
    json_seconds: list[float] = field(default_factory=list)  # JSON completions' latency since the last sample

    def settled(self) -> int:
        return sum(self.answered.values()) + sum(self.client_errors.values())


@dataclass(frozen=True)
class Sample:
    minute: float
    gateway_rss_mb: float
    gateway_cpu_cores: float  # CPU seconds per second since the last sample: queueing starts near 2 here
    json_p50_s: float  # a JSON completion's latency, send to last byte (the demo upstream takes ~0.4-1.6 s)
    json_p99_s: float
    demo_rss_mb: float
    sent: int
    ok: int
    answered: dict[str, int]
    client_errors: dict[str, int]
    ledger_requests: float
    injected: dict[int, int]


async def ledger_requests(client: httpx.AsyncClient, url: str) -> tuple[str, float, dict[str, float]]:
    """(scope, all-time successful requests, per route) from ``GET /v1/ledger``, whose rows are per label set."""
    body = (await client.get(url + "/v1/ledger")).json()
    per_route: Counter[str] = Counter()
    for row in body["rows"]:
        per_route[row["route"]] += row.get("requests", 0.0)
    return body["scope"], sum(per_route.values()), dict(per_route)


async def settled_ledger(client: httpx.AsyncClient, url: str, expected: float,
                         timeout_s: float = 20.0) -> tuple[str, float, dict[str, float]]:
    """The ledger once it reaches ``expected`` or stops moving: its writer batches in the background."""
    began, last = time.monotonic(), None
    while True:
        found = await ledger_requests(client, url)
        if found[1] == expected or time.monotonic() - began > timeout_s or (last is not None and last[1] == found[1]
                                                                           and time.monotonic() - began > 5):
            return found
        last = found
        await asyncio.sleep(0.5)


def request_body(rng: random.Random, asked: list[str], stream_share: float) -> tuple[str, str, dict[str, Any]]:
    """(kind, path, body): an embedding now and then, else a support question, streamed or not."""
    if rng.random() < EMBEDDING_SHARE:
        return "embedding", "/v1/embeddings", {"model": "demo-embed", "input": [rng.choice(asked), rng.choice(asked)]}
    stream = rng.random() < stream_share
    body: dict[str, Any] = {"model": "support", "user": f"user-{rng.randrange(200)}",
                            "messages": [{"role": "user", "content": rng.choice(asked)}]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return ("stream" if stream else "json"), "/v1/chat/completions", body


async def one_request(session: aiohttp.ClientSession, url: str, kind: str, path: str, body: dict[str, Any],
                      tally: Tally) -> None:
    began = time.monotonic()
    try:
        async with session.post(url + path, json=body) as response:
            data = await response.read()
            if kind == "json":
                tally.json_seconds.append(time.monotonic() - began)
            complete = response.status == 200 and (kind != "stream" or data.rstrip().endswith(b"data: [DONE]"))
            if response.status == 200 and not complete:
                tally.client_errors["incomplete stream"] += 1
                return
            tally.answered[f"{kind} {response.status}"] += 1
            tally.ok += complete
    except (TimeoutError, aiohttp.ClientError) as exc:
        tally.client_errors[type(exc).__name__] += 1


async def drive(url: str, gateway: System, demo: System, proxy: FailingProxy, args: argparse.Namespace,
                baseline: float) -> tuple[Tally, list[Sample], int]:
    """Send at ``args.rate`` for ``args.duration_s``, sample every ``args.sample_s``; (tally, samples, lost)."""
    rng = random.Random(args.seed)
    asked = questions()
    tally = Tally()
    samples: list[Sample] = []
    pending: set[asyncio.Task[None]] = set()
    total = int(args.duration_s * args.rate)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session, \
            httpx.AsyncClient(timeout=10) as admin:
        began = time.monotonic()
        cpu = [gateway.cpu_s(), began]

        async def sample() -> None:
            _, ledger, _ = await ledger_requests(admin, url)
            now, cpu_s = time.monotonic(), gateway.cpu_s()
            cores, cpu[:] = (cpu_s - cpu[0]) / (now - cpu[1]), [cpu_s, now]
            seconds, tally.json_seconds = sorted(tally.json_seconds) or [math.nan], []
            entry = Sample(round((now - began) / 60, 2), round(gateway.rss_mb(), 1), round(cores, 2),
                           round(seconds[len(seconds) // 2], 3), round(seconds[int(len(seconds) * 0.99)], 3),
                           round(demo.rss_mb(), 1), tally.sent, tally.ok, dict(tally.answered),
                           dict(tally.client_errors), ledger - baseline, dict(proxy.injected))
            samples.append(entry)
            print(json.dumps(asdict(entry)), flush=True)

        async def sampler() -> None:
            while True:
                await asyncio.sleep(args.sample_s)
                await sample()

        sampling = asyncio.create_task(sampler())
        for index in range(total):
            delay = began + index / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            kind, path, body = request_body(rng, asked, args.stream_share)
            task = asyncio.create_task(one_request(session, url, kind, path, body, tally))
            tally.sent += 1
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.wait(set(pending), timeout=REQUEST_TIMEOUT_S + 10)
        sampling.cancel()
        lost = tally.sent - tally.settled()
        for task in pending:
            task.cancel()
        await sample()  # the gateway after the last request: RSS at the end
    return tally, samples, lost


def growth(samples: list[Sample], duration_s: float) -> tuple[float, float, float, float]:
    """(window s, RSS at its start, at the end, growth): the last 20 minutes, or 2/3 of a shorter run."""
    window_s = min(FLAT_WINDOW_S, duration_s * 2 / 3)
    mark = max(duration_s - window_s, 0) / 60
    start_sample = min(samples, key=lambda s: abs(s.minute - mark))
    first, last = start_sample.gateway_rss_mb, samples[-1].gateway_rss_mb
    return window_s, first, last, (last - first) / first


def gateway_counter(url: str, family: str) -> float:
    """A counter's total over all its labels, from the gateway's ``/metrics``."""
    exposition = httpx.get(url + "/metrics", timeout=10).text
    return sum(sample.value for metrics in text_string_to_metric_families(exposition) if metrics.name == family
               for sample in metrics.samples if sample.name == family + "_total")


def delete_prefix(prefix: str) -> None:
    """Remove this run's keys; never flush a server others use."""
    with redis.Redis.from_url(REDIS_URL) as client:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def run(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"hgsoak:{uuid.uuid4().hex[:12]}:"
    data_dir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    demo_port, gateway_port = free_port(), free_port()
    for name in [name for name in os.environ if name.startswith(("HYBRID_GATEWAY_", "OPENAI_"))]:
        del os.environ[name]  # start() passes this environment on: the shipped default, nothing from the shell
    demo = start("demo upstream", [str(BIN / "hybrid-gateway"), "demo-upstream", "--port", str(demo_port)],
                 demo_port, "demo-large")
    gateway = None
    try:
        with FailingProxy(demo.url, args.seed) as proxy:
            gateway = start("embedded default", [str(BIN / "hybrid-gateway"), "serve", "--port", str(gateway_port),
                                                 "--demo", "off", "--log-level", "warning"], gateway_port, "support",
                            env={"HYBRID_GATEWAY_DATA_DIR": str(data_dir), "HYBRID_GATEWAY_REDIS_URL": REDIS_URL,
                                 "HYBRID_GATEWAY_REDIS_PREFIX": prefix, "HYBRID_GATEWAY_DEMO_URL": proxy.url},
                            output=data_dir / "gateway.log")
            wait_for_knowledge(gateway.url)

            async def baseline() -> tuple[str, float, dict[str, float]]:
                async with httpx.AsyncClient(timeout=10) as admin:
                    return await settled_ledger(admin, gateway.url, 1.0)  # start() made one request

            scope, before, _ = asyncio.run(baseline())
            if scope != "cluster":
                raise RuntimeError(f"the ledger's scope is {scope!r}, not the cluster's: is Redis at {REDIS_URL}?")
            proxy.share = args.failure_share
            tally, samples, lost = asyncio.run(drive(gateway.url, gateway, demo, proxy, args, before))

            async def final() -> tuple[str, float, dict[str, float]]:
                async with httpx.AsyncClient(timeout=10) as admin:
                    return await settled_ledger(admin, gateway.url, before + tally.ok)

            _, after, per_route = asyncio.run(final())
            fallbacks = gateway_counter(gateway.url, "gateway_fallbacks")
            injected, forwarded, abandoned = dict(proxy.injected), proxy.forwarded, dict(proxy.abandoned)
    finally:
        if gateway is not None:
            stop(gateway)
        stop(demo)
        delete_prefix(prefix)
    window_s, rss_from, rss_to, rss_growth = growth(samples, args.duration_s)
    ledger_delta = after - before
    shutil.rmtree(data_dir, ignore_errors=True)
    return {
        "commit": args.commit, "rate": args.rate, "duration_s": args.duration_s, "stream_share": args.stream_share,
        "failure_share": args.failure_share, "embedding_share": EMBEDDING_SHARE,
        "sent": tally.sent, "ok": tally.ok, "answered": dict(tally.answered), "client_errors": dict(tally.client_errors),
        "lost": lost, "ledger_requests": ledger_delta, "ledger_per_route": per_route,
        "ledger_minus_client": ledger_delta - tally.ok, "injected": injected, "forwarded_by_proxy": forwarded,
        "abandoned_at_proxy": abandoned, "fallbacks": fallbacks,
        "rss_window_s": window_s, "rss_window_start_mb": rss_from, "rss_end_mb": rss_to, "rss_growth": rss_growth,
        "samples": [asdict(s) for s in samples],
        "passed": rss_growth < MAX_GROWTH and lost == 0 and ledger_delta == tally.ok,
    }


def summary(result: dict[str, Any]) -> str:
    return "\n".join([
        f"commit {result['commit']}: {result['rate']} req/s for {result['duration_s']:.0f} s, "
        f"stream share {result['stream_share']}, failure share {result['failure_share']}",
        f"sent {result['sent']}, complete 200s {result['ok']}, answered {result['answered']}, "
        f"client errors {result['client_errors']}, lost {result['lost']}",
        f"injected at the upstream {result['injected']}, forwarded {result['forwarded_by_proxy']}, "
        f"hung up on by the gateway {result['abandoned_at_proxy']}, fallbacks taken {result['fallbacks']:.0f}",
        f"ledger requests {result['ledger_requests']:.0f} vs client {result['ok']} "
        f"(difference {result['ledger_minus_client']:+.0f})",
        f"gateway RSS over the last {result['rss_window_s'] / 60:.1f} min: {result['rss_window_start_mb']:.1f} -> "
        f"{result['rss_end_mb']:.1f} MB ({result['rss_growth']:+.2%})",
        "PASSED" if result["passed"] else "FAILED",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=1800.0)
    parser.add_argument("--rate", type=float, default=15.0, help="requests per second, open loop")
    parser.add_argument("--stream-share", type=float, default=0.4, help="share of chat completions streamed")
    parser.add_argument("--failure-share", type=float, default=0.05,
                        help="share of upstream model calls answered 429/500 by the proxy")
    parser.add_argument("--sample-s", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args()
    args.commit = commit()
    result = run(args)
    print(summary(result))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2))
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
