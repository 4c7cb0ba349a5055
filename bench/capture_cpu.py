"""What capture adds to a request's CPU, measured two ways.

1. End to end: the same route with and without ``capture: {share: 1.0}``, one worker behind the
   zero-delay demo upstream, wrk at concurrency 1 on each route in turn, rounds alternating. CPU per
   request is the gateway's process CPU (the capture writer's thread included: it parses, redacts and
   writes to SQLite in the same process) over the requests served, read ``SETTLE_S`` after wrk ends, so
   that the writer's last batch of a captured round is charged to that round, not to the next plain one;
   the capture counters at the end show every request stored and none dropped. The report gives the
   difference of the two medians and the median of the paired differences, and per route the medians of
   the main thread's (the event loop's) and the other threads' (chiefly the writer's) CPU per request. wrk repeats one body, so the
   redaction of its question and answer comes from the redactor's cache after the first. On a shared
   2-core machine the paired differences spread wider than the effect, so:
2. In process: the capture writer alone (offer, parse, redact, batched SQLite write) fed finished
   requests at ~5,000 per second, process CPU per capture less the same loop without captures. Their ids
   are the gateway's own (``new_request_id``): the order of the keys decides where in the index each row lands.

    .venv/bin/python bench/capture_cpu.py [--rounds R] [--duration S]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from gateway.accounting.completion import Arrival, Exchange, Routing, finish
from gateway.accounting.usage import Usage
from gateway.capture import CaptureStore, CaptureWriter, Redactor
from gateway.metrics import Metrics
from gateway.pipeline.intake import new_request_id

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead  # a sibling script, not a package

ROUTES = """version: 1
routes:
  plain:
    arms:
      prompted: {target: upstream, system_prompt: "You are the Lumen Freight support desk."}
  captured:
    capture: {share: 1.0}
    arms:
      prompted: {target: upstream, system_prompt: "You are the Lumen Freight support desk."}
"""


_ANSWER = orjson.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": (
    "Refunds on annual plans are prorated. Contact billing within 30 days of the charge and we will refund the "
    "duplicate payment to the original card.")}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 40,
                                                                                  "completion_tokens": 30}})
SETTLE_S = 0.3  # the writer's linger (50 ms) and a batch's write, with room to spare
_SYSTEM = {"role": "system", "content": "You are the Lumen Freight support desk. Answer briefly and cite the docs."}


def _paced(count: int, writer: CaptureWriter | None) -> float:
    """Process CPU of ``count`` iterations spaced 0.2 ms apart, each offering one capture when given a writer."""
    done = [finish(Arrival(new_request_id(), "chat"), Routing("bench", "prompted", "upstream"),
                   usage=Usage(40, 30), exchange=Exchange(own, [_SYSTEM, *own], _ANSWER))
            for own in ([{"role": "user", "content": f"Hello {i}, how do refunds work for the annual "
                          "plan? My order number is 1234 and I was charged twice."}] for i in range(count))]
    began = time.process_time()
    for item in done:
        if writer is not None:
            writer.offer(item)
        time.sleep(0.0002)
    if writer is not None:
        assert writer.flush(60)
    return time.process_time() - began


def writer_cpu_us(rounds: int, count: int = 2_000) -> list[float]:
    """Per round: CPU per capture of the writer path, less the pacing loop's own CPU."""
    redactor = Redactor()
    writer = CaptureWriter(lambda: CaptureStore.open(None, Path(tempfile.mkdtemp(prefix="bench-capture-db-"))),
                           lambda route: redactor, lambda route: 90.0, lambda: True, Metrics())
    writer.start()
    try:
        _paced(50, writer)  # opens and migrates the store
        return [round((_paced(count, writer) - _paced(count, None)) / count * 1e6, 1) for _ in range(rounds)]
    finally:
        writer.close()


def _threads_s(system: overhead.System) -> tuple[float, float]:
    """CPU seconds so far of the gateway's main thread (the event loop: one worker, no child process) and of
    its other threads together (the capture writer's, and any worker threads), from ``/proc/PID/task``."""
    main = others = 0
    for task in Path(f"/proc/{system.process.pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            ticks = int(fields[11]) + int(fields[12])
            if task.name == str(system.process.pid):
                main += ticks
            else:
                others += ticks
    return main / os.sysconf("SC_CLK_TCK"), others / os.sysconf("SC_CLK_TCK")


def _cpu_ms_per_req(system: overhead.System, duration: int) -> tuple[float, float, float]:
    """One wrk run's CPU per request, its settling time after wrk included (idle for a plain round): the
    process's, its main thread's and its other threads'."""
    began, (main, others) = system.cpu_s(), _threads_s(system)
    run = overhead.wrk(system, 1, duration)
    served = (system.cpu_s() - began) * 1000 / run["cpu_ms_per_req"]  # the requests wrk counted
    time.sleep(SETTLE_S)
    main_now, others_now = _threads_s(system)
    return ((system.cpu_s() - began) * 1000 / served, (main_now - main) * 1000 / served,
            (others_now - others) * 1000 / served)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-capture-"))
    upstream_port, gateway_port = overhead.free_port(), overhead.free_port()
    policies = overhead.policy_dir(upstream_port)  # the zero-delay upstream's target, shared with the other benches
    (policies / "capture.yaml").write_text(ROUTES)
    direct = overhead.start("direct", [str(overhead.BIN / "hybrid-gateway"), "demo-upstream", "--port",
                                       str(upstream_port), "--latency-scale", "0"], upstream_port, "demo-large")
    gateway = overhead.start("gateway", [str(overhead.BIN / "hybrid-gateway"), "serve", "--port", str(gateway_port),
                                         "--policies", str(policies), "--demo", "off", "--workers", "1"],
                             gateway_port, "plain", env={"HYBRID_GATEWAY_DATA_DIR": str(work / "var"),
                                                         "HYBRID_GATEWAY_ACCESS_LOG": "0"})
    captured = overhead.System("gateway", gateway.url, "captured", gateway.process, None, 0)
    figures: dict[str, list[float]] = {"plain": [], "captured": []}
    threads: dict[str, list[tuple[float, float]]] = {"plain": [], "captured": []}
    try:
        for _ in range(args.rounds):
            for name, system in (("plain", gateway), ("captured", captured)):
                total, main_ms, others_ms = _cpu_ms_per_req(system, args.duration)
                figures[name].append(total)
                threads[name].append((main_ms, others_ms))
            print(json.dumps({name: values[-1] for name, values in figures.items()}), file=sys.stderr)
        metrics = httpx.get(gateway.url + "/metrics").text
    finally:
        overhead.stop(gateway)
        overhead.stop(direct)
    medians = {name: statistics.median(values) for name, values in figures.items()}
    paired = [c - p for p, c in zip(figures["plain"], figures["captured"], strict=True)]
    counters = [line for line in metrics.splitlines() if line.startswith("gateway_captures_total")]
    print(json.dumps({"plain_cpu_ms_per_req": round(medians["plain"], 4),
                      "captured_cpu_ms_per_req": round(medians["captured"], 4),
                      "capture_added_cpu_ms_per_req": round(medians["captured"] - medians["plain"], 4),
                      "paired_median_ms": round(statistics.median(paired), 4),
                      "paired_differences_ms": [round(difference, 4) for difference in paired],
                      "capture_counters": counters,
                      "threads_ms_per_req": {name: {"main": round(statistics.median(m for m, _ in values), 4),
                                                    "others": round(statistics.median(o for _, o in values), 4)}
                                             for name, values in threads.items()},
                      "writer_cpu_us_per_capture": writer_cpu_us(args.rounds)}))


if __name__ == "__main__":
    main()
