"""What one multi-megabyte prompt costs the gateway: resident memory and CPU, until the process is idle again.

Starts the embedded default (``hybrid-gateway serve``, shipped policies, a fresh data
directory, the demo upstream) with an 8 MiB body limit, waits until knowledge is
ready, sends a few ordinary questions on ``support`` (the route with the classifier
and retrieval), then one prompt of ``--mb`` MiB of words. It reads the gateway
process's ``VmRSS``, ``VmHWM`` (peak RSS) and user+system CPU from ``/proc`` before
the request and once the process has been idle for a second after it: retrieval's
encoder work may outlive the request (it runs on, past its timeout, in a worker
thread), and that CPU counts too. The demo upstream is a child process and not
counted.

    .venv/bin/python bench/huge_prompt.py [--mb 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import httpx
from overhead import BIN, free_port, start, stop  # bench/ is the script's directory
from rag_load import wait_for_knowledge

_TICKS = os.sysconf("SC_CLK_TCK")
FILLER = "Which plan includes priority support and how do I change my billing date? "


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in KiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds of ``pid`` (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def until_idle(pid: int, quiet_s: float = 1.0, timeout_s: float = 60) -> float:
    """CPU seconds once ``pid`` has used under 20 ms in a ``quiet_s`` interval."""
    began, last = time.monotonic(), cpu_s(pid)
    while time.monotonic() - began < timeout_s:
        time.sleep(quiet_s)
        now = cpu_s(pid)
        if now - last < 0.02:
            return now
        last = now
    raise RuntimeError(f"gateway still busy {timeout_s} s after the request")


def one(url: str, pid: int, content: str) -> dict[str, object]:
    before_cpu, before = until_idle(pid), memory_kib(pid)
    began = time.monotonic()
    response = httpx.post(url + "/v1/chat/completions", timeout=120,
                          json={"model": "support", "messages": [{"role": "user", "content": content}]})
    wall = time.monotonic() - began
    after_cpu = until_idle(pid)
    after = memory_kib(pid)
    return {"status": response.status_code, "rag": response.headers.get("x-gateway-rag"),
            "rag_ms": response.headers.get("x-gateway-rag-ms"), "wall_s": wall, "cpu_s": after_cpu - before_cpu,
            "rss_mib": before["VmRSS"] / 1024, "peak_growth_mib": (after["VmHWM"] - before["VmHWM"]) / 1024,
            "rss_growth_mib": (after["VmRSS"] - before["VmRSS"]) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=4.0, help="prompt size in MiB (under the 8 MiB body limit)")
    parser.add_argument("--repeat", type=int, default=3, help="huge requests, one after another")
    args = parser.parse_args()
    port = free_port()
    env = {"HYBRID_GATEWAY_DATA_DIR": tempfile.mkdtemp(prefix="bench-huge-"),
           "HYBRID_GATEWAY_MAX_BODY_BYTES": str(8 << 20)}
    system = start("embedded default", [str(BIN / "hybrid-gateway"), "serve", "--port", str(port),
                                        "--demo-port", str(free_port()), "--log-level", "error"],
                   port, "support", env=env)
    try:
        wait_for_knowledge(system.url)
        pid = system.process.pid
        for _ in range(3):
            one(system.url, pid, FILLER)  # warm: the first searches and decisions allocate their buffers
        prompt = FILLER * int(args.mb * (1 << 20) / len(FILLER))
        print("| request | status | x-gateway-rag | rag ms | wall s | CPU s | RSS before MiB | peak RSS growth MiB "
              "| RSS growth MiB |")
        print("|---|---|---|---|---|---|---|---|---|")
        for label, content in [("ordinary", FILLER)] + [(f"{args.mb:g} MiB #{i + 1}", prompt)
                                                        for i in range(args.repeat)]:
            r = one(system.url, pid, content)
            print(f"| {label} | {r['status']} | {r['rag']} | {r['rag_ms']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} "
                  f"| {r['rss_mib']:.0f} | {r['peak_growth_mib']:.0f} | {r['rss_growth_mib']:.0f} |", flush=True)
    finally:
        stop(system)


if __name__ == "__main__":
    main()
