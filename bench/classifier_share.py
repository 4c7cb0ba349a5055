"""The realised prompted share on ordinary support traffic, through the real embedded default.

Starts ``hybrid-gateway serve`` as a new user would (shipped policies, the ``support`` route with
``strong_share: 0.3`` and the ``default`` model, the demo upstream with its realistic latency, no
Redis), or uses ``--url``; sends short Lumen Freight support questions (tests/support/support_traffic.py),
some streamed, several at a time; and reports the share of responses whose ``x-gateway-arm`` is
``prompted``: over all requests, the first ``--warm-up`` and the rest, beside the share the old fixed
threshold (the training quantiles' 70th percentile) would have given the same scores. Then it times
the calibration's own work per decision (the cut and the count, without scoring). Run from the repo root:

    .venv/bin/python bench/classifier_share.py [--requests 400] [--concurrency 8] [--url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the question generator is shared with the tests

from routes import CalibrationWindow, ScoreSketch, load_classifier  # noqa: E402
from tests.support.support_traffic import support_questions  # noqa: E402

ROUTE, SHARE = "support", 0.3


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_gateway() -> tuple[subprocess.Popen[bytes], str]:
    port, demo = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYBRID_GATEWAY_", "OPENAI_"))}
    env |= {"HYBRID_GATEWAY_DATA_DIR": tempfile.mkdtemp(prefix="hg-share-"), "HYBRID_GATEWAY_ACCESS_LOG": "0"}
    process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(port),
                                "--demo-port", str(demo)], cwd=ROOT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError("the gateway did not become ready")


async def drive(url: str, questions: list[str], concurrency: int, stream_every: int) -> list[tuple[str, float]]:
    """(arm, score) per question, in the order they were sent."""
    results: list[tuple[str, float]] = [("", 0.0)] * len(questions)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(questions)):
        queue.put_nowait(index)
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        async def worker() -> None:
            while not queue.empty():
                index = queue.get_nowait()
                body = {"model": ROUTE, "messages": [{"role": "user", "content": questions[index]}],
                        "user": f"bench-{index}", "stream": index % stream_every == 0}
                async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                    await response.aread()
                    if response.status_code != 200:
                        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
                    results[index] = (response.headers["x-gateway-arm"],
                                      float(response.headers.get("x-gateway-score", "nan")))
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def calibration_cost_us(scores: list[float]) -> tuple[float, float, float]:
    """Microseconds of one `cut` plus one `record` on a sketch fed these scores over and over:
    the median over the first 1,000 decisions (cut recomputed every time), then the median and mean
    over decisions 20,000-30,000 (a full 10,000-decision window, cut recomputed every 10)."""
    sketch = ScoreSketch(load_classifier("default").calibration, CalibrationWindow())
    timings = []
    for index in range(30_000):
        score = scores[index % len(scores)]
        began = time.perf_counter()
        cut = sketch.cut(SHARE)
        sketch.record(score, score > cut.threshold)
        timings.append(time.perf_counter() - began)
    full = timings[20_000:]
    return (statistics.median(timings[:1_000]) * 1e6, statistics.median(full) * 1e6,
            statistics.mean(full) * 1e6)


def share(arms: list[str]) -> float:
    return arms.count("prompted") / len(arms)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--stream-every", type=int, default=4, help="every Nth request streams (default 4)")
    parser.add_argument("--warm-up", type=int, default=50, help="requests counted apart as warm-up")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--url", help="an already running gateway (default: start the embedded default)")
    args = parser.parse_args()
    process, url = (None, args.url) if args.url else start_gateway()
    try:
        questions = support_questions(args.requests, args.seed)
        began = time.monotonic()
        results = asyncio.run(drive(url, questions, args.concurrency, args.stream_every))
        took = time.monotonic() - began
        view = next(r["classifier"] for r in httpx.get(url + "/v1/routes").json()["routes"] if r["route"] == ROUTE)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    arms = [arm for arm, _ in results]
    scores = [score for _, score in results]
    fixed = load_classifier("default").threshold_for_share(SHARE)
    print(f"$ {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(f"{len(arms)} support questions to {url} in {took:.0f} s (concurrency {args.concurrency}, "
          f"every {args.stream_every}th streamed), strong_share {SHARE}")
    print(f"prompted share: all {share(arms):.1%}, first {args.warm_up} {share(arms[:args.warm_up]):.1%}, "
          f"after them {share(arms[args.warm_up:]):.1%}")
    print(f"old fixed threshold {fixed:.4f} (training quantiles) on the same scores: "
          f"{sum(s >= fixed for s in scores) / len(scores):.1%}")
    print(f"/v1/routes: threshold {view['threshold']:.4f}, prompted_share {view['prompted_share']:.1%} "
          f"over {view['decisions']} decisions")
    small, full, mean = calibration_cost_us(scores)
    print(f"calibration cost per decision (cut + record, no scoring): median {small:.1f} us over the first 1,000; "
          f"with a full window median {full:.1f} us, mean {mean:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
