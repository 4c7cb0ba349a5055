"""Knowledge under load: does every concurrent request of the embedded default get its context?

Starts the embedded default (``hybrid-gateway serve`` with the shipped policies, a
fresh data directory, the demo upstream at full simulated latency) unless
``--url`` names a running gateway, waits until knowledge is ready, then runs a
closed loop of support questions (bench/data/retrieval_questions.jsonl, each
answered by the demo corpus) on the ``support`` route at each concurrency.

Per concurrency it prints the ``x-gateway-rag`` results (hit, miss, timeout,
unavailable), the time retrieval added per request (``x-gateway-rag-ms``: queue
wait, embedding and search) and all the time the gateway added
(``x-gateway-overhead-ms``: retrieval plus the classifier, whose encoder runs
on the same two cores, and the ~0.5 ms hot path), p50 and p99.

    .venv/bin/python bench/rag_load.py [--concurrency 8 32 64] [--requests-per-worker 4] [--url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import httpx
from overhead import BIN, free_port, start, stop  # bench/ is the script's directory

QUESTIONS = Path(__file__).with_name("data") / "retrieval_questions.jsonl"


def questions() -> list[str]:
    return [json.loads(line)["question"] for line in QUESTIONS.read_text().splitlines() if line.strip()]


def wait_for_knowledge(url: str, timeout_s: float = 180) -> None:
    """Until /readyz says the knowledge store answered (the demo corpus is ingested on first start)."""
    began = time.monotonic()
    with httpx.Client(timeout=5) as client:
        while time.monotonic() - began < timeout_s:
            if client.get(url + "/readyz").json()["checks"].get("knowledge") == "ok":
                return
            time.sleep(0.2)
    raise RuntimeError(f"knowledge at {url} not ready after {timeout_s} s")


async def load(url: str, asked: list[str], concurrency: int,
               per_worker: int) -> tuple[Counter[str], list[float], list[float]]:
    """Closed loop: ``concurrency`` workers, ``per_worker`` questions each; rag results, rag ms and overhead ms."""
    results: Counter[str] = Counter()
    rag_ms: list[float] = []
    added_ms: list[float] = []

    async def worker(session: aiohttp.ClientSession, index: int) -> None:
        for turn in range(per_worker):
            question = asked[(index * per_worker + turn) % len(asked)]
            body = {"model": "support", "messages": [{"role": "user", "content": question}]}
            async with session.post(url + "/v1/chat/completions", json=body) as response:
                await response.read()
                assert response.status == 200, response.status
                results[response.headers.get("x-gateway-rag", "none")] += 1
                rag_ms.append(float(response.headers.get("x-gateway-rag-ms", "nan")))
                added_ms.append(float(response.headers["x-gateway-overhead-ms"]))

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        await asyncio.gather(*(worker(session, i) for i in range(concurrency)))
    return results, rag_ms, added_ms


def percentile(samples: list[float], share: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[round(share * 100) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--requests-per-worker", type=int, default=4)
    parser.add_argument("--url", help="a running gateway serving the shipped `support` route")
    args = parser.parse_args()
    system = None
    url = args.url
    if url is None:
        port = free_port()
        env = {"HYBRID_GATEWAY_DATA_DIR": tempfile.mkdtemp(prefix="bench-rag-")}
        system = start("embedded default", [str(BIN / "hybrid-gateway"), "serve", "--port", str(port),
                                            "--demo-port", str(free_port()), "--log-level", "error"],
                       port, "support", env=env)
        url = system.url
    try:
        wait_for_knowledge(url)
        asked = questions()
        asyncio.run(load(url, asked, 4, 2))  # warm-up
        print("| concurrency | requests | hit | miss | timeout | unavailable | retrieval p50 ms | retrieval p99 ms "
              "| gateway p50 ms | gateway p99 ms |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for concurrency in args.concurrency:
            results, rag, added = asyncio.run(load(url, asked, concurrency, args.requests_per_worker))
            print(f"| {concurrency} | {sum(results.values())} | {results['hit']} | {results['miss']} | "
                  f"{results['timeout']} | {results['unavailable']} | {percentile(rag, 0.5):.1f} | "
                  f"{percentile(rag, 0.99):.1f} | {percentile(added, 0.5):.1f} | {percentile(added, 0.99):.1f} |",
                  flush=True)
            if set(results) - {"hit", "miss", "timeout", "unavailable"}:
                print(f"  other results: {dict(results)}", file=sys.stderr)
    finally:
        if system is not None:
            stop(system)


if __name__ == "__main__":
    main()
