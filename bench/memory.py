"""Resident memory of the embedded default per process, after a few mixed requests on ``support``.

Starts ``hybrid-gateway serve`` (shipped policies, a fresh data directory, the demo
upstream) with ``--workers`` uvicorn workers, waits until knowledge is ready, sends
``--requests`` mixed questions on ``support`` (the route with the ``default``
classifier and retrieval over embedded Chroma) spread over the workers, then reads
``/proc/PID/smaps_rollup`` of every process in the tree: RSS, PSS (shared pages split
between the processes that map them) and anonymous memory (heap and arenas: what
each worker holds privately). The demo upstream is listed too but is not the gateway.

    .venv/bin/python bench/memory.py [--workers 1] [--requests 30]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import httpx
from overhead import BIN, free_port, start, stop  # bench/ is the script's directory
from rag_load import wait_for_knowledge

QUESTIONS = (
    "What is the refund policy for annual plans?",
    "How do I change my billing date?",
    "Which plan includes priority support?",
    "Prove that the square root of 2 is irrational, step by step.",
    "My invoice shows a charge twice this month, what should I do?",
    "Write a Python function that merges two sorted lists and explain its complexity.",
    "hi",
    "Compare the contractual liability of a reseller under EU and US law for defective software.",
    "Can I export my data before cancelling? " * 20,
    "A train leaves at 3 pm at 80 km/h; another at 4 pm at 100 km/h. When does the second catch up?",
)


def rollup(pid: int) -> dict[str, int]:
    """Rss, Pss and Anonymous of ``pid`` in KiB, from /proc/PID/smaps_rollup."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    return {name: fields[name] for name in ("Rss", "Pss", "Anonymous")}


def tree(root: int) -> list[int]:
    """``root`` and its descendants, parents first."""
    pids, index = [root], 0
    while index < len(pids):
        children = Path(f"/proc/{pids[index]}/task/{pids[index]}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
        index += 1
    return pids


def role(pid: int) -> str:
    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    if "demo_upstream" in command or "demo-upstream" in command:
        return "demo upstream"
    if "resource_tracker" in command:
        return "multiprocessing resource tracker"
    if "multiprocessing" in command:
        return "gateway worker"
    return "gateway (serve)"


async def send(url: str, requests: int) -> list[int]:
    """``requests`` questions, four at a time, so every worker gets some."""
    async with httpx.AsyncClient(timeout=60) as client:
        async def one(index: int) -> int:
            body = {"model": "support", "messages": [{"role": "user", "content": QUESTIONS[index % len(QUESTIONS)]}]}
            return (await client.post(url + "/v1/chat/completions", json=body)).status_code

        statuses: list[int] = []
        for start_at in range(0, requests, 4):
            statuses += await asyncio.gather(*(one(i) for i in range(start_at, min(start_at + 4, requests))))
        return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    port = free_port()
    env = {"HYBRID_GATEWAY_DATA_DIR": tempfile.mkdtemp(prefix="bench-memory-")}
    system = start("embedded default", [str(BIN / "hybrid-gateway"), "serve", "--port", str(port),
                                        "--workers", str(args.workers), "--demo-port", str(free_port()),
                                        "--log-level", "error"], port, "support", env=env)
    try:
        wait_for_knowledge(system.url)
        statuses = asyncio.run(send(system.url, args.requests))
        print(f"workers={args.workers} requests={len(statuses)} ok={statuses.count(200)}")
        print("| process | pid | RSS MiB | PSS MiB | anonymous MiB |")
        print("|---|---|---|---|---|")
        for pid in tree(system.process.pid):
            kib = rollup(pid)
            print(f"| {role(pid)} | {pid} | {kib['Rss'] / 1024:.0f} | {kib['Pss'] / 1024:.0f} "
                  f"| {kib['Anonymous'] / 1024:.0f} |")
    finally:
        stop(system)


if __name__ == "__main__":
    main()
