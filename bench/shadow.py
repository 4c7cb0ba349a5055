"""Does shadow traffic slow the client down? Client latency with 100% mirroring vs none.

Two gateways over the same main upstream (the demo upstream at 10% of its
simulated latency); one mirrors every request to a slow shadow target (a
second demo upstream at full simulated latency, over a second long). The same
closed-loop load runs against each, alternating rounds.

    .venv/bin/python bench/shadow.py [--requests N] [--concurrency C] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from overhead import BIN, free_port, start, stop  # bench/ is the script's directory

POLICY = """version: 1
targets:
  main:
    provider: vllm
    model: ft:demo-small:hybrid-gateway:support:v1
    api_base: http://127.0.0.1:{main}/v1
    price: {{input_per_million: 0.3, output_per_million: 1.2}}
  candidate:
    provider: vllm
    model: demo-large
    api_base: http://127.0.0.1:{shadow}/v1
    timeout_s: 30
    price: {{input_per_million: 2.5, output_per_million: 10}}
routes:
  bench:
    arms:
      prompted: {{target: main}}
{shadow_line}
"""


def policies(main: int, shadow: int, share: float) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="bench-shadow-"))
    line = f"    shadow: {{target: candidate, share: {share}}}" if share else ""
    (directory / "p.yaml").write_text(POLICY.format(main=main, shadow=shadow, shadow_line=line))
    return directory


async def load(url: str, requests: int, concurrency: int) -> list[float]:
    body = {"model": "bench", "messages": [{"role": "user", "content": "Where is my parcel?"}]}
    samples: list[float] = []
    queue = iter(range(requests))

    async def worker(session: aiohttp.ClientSession) -> None:
        for _ in queue:
            began = time.perf_counter()
            async with session.post(url + "/v1/chat/completions", json=body) as response:
                await response.read()
                assert response.status == 200
            samples.append((time.perf_counter() - began) * 1000)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    main_port, shadow_port = free_port(), free_port()
    upstreams = [start("main", [str(BIN / "hybrid-gateway"), "demo-upstream", "--port", str(main_port),
                                "--latency-scale", "0.1"], main_port, "ft:demo-small:hybrid-gateway:support:v1"),
                 start("shadow", [str(BIN / "hybrid-gateway"), "demo-upstream", "--port", str(shadow_port),
                                  "--latency-scale", "1"], shadow_port, "demo-large")]
    gateways = {}
    for share in (0.0, 1.0):
        port = free_port()
        gateways[share] = start(f"share={share}", [str(BIN / "hybrid-gateway"), "serve", "--port", str(port),
                                                    "--demo", "off", "--policies",
                                                    str(policies(main_port, shadow_port, share))], port, "bench")
    p50: dict[float, list[float]] = {0.0: [], 1.0: []}
    p99: dict[float, list[float]] = {0.0: [], 1.0: []}
    try:
        for round_index in range(args.rounds):
            for share in ((0.0, 1.0) if round_index % 2 == 0 else (1.0, 0.0)):
                samples = sorted(asyncio.run(load(gateways[share].url, args.requests, args.concurrency)))
                p50[share].append(statistics.median(samples))
                p99[share].append(samples[int(len(samples) * 0.99) - 1])
                print(f"round {round_index + 1} share={share}: p50 {p50[share][-1]:.1f} ms, "
                      f"p99 {p99[share][-1]:.1f} ms", file=sys.stderr)
    finally:
        for system in [*gateways.values(), *upstreams]:
            stop(system)
    base, mirrored = statistics.median(p50[0.0]), statistics.median(p50[1.0])
    print(f"client p50 without shadow: {base:.1f} ms (p99 {statistics.median(p99[0.0]):.1f} ms)")
    print(f"client p50 with 100% shadow to a slow target: {mirrored:.1f} ms (p99 {statistics.median(p99[1.0]):.1f} ms)")
    print(f"ratio: {mirrored / base:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
