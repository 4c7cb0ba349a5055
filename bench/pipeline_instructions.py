"""Gateway instructions per request on three request shapes, counted by callgrind: repeatable on a noisy machine.

``bench/pipeline_cpu.py`` times CPU, which on a shared two-core machine swings by 10-20% from run
to run; callgrind counts the instructions the gateway process executes, which stay put whatever
else runs (valgrind's own docs; seen here: the same total twice, once with the other core loaded).
Each tree's gateway runs under ``valgrind --tool=callgrind`` behind the zero-delay demo upstream;
after a warm-up the counters are zeroed, ``--requests`` requests of one shape are sent one at a
time, and the dump's total divided by the requests is the figure. Instructions are not seconds
(cache misses and system calls weigh differently), so this compares trees; time stays
``pipeline_cpu.py``'s job.

    .venv/bin/python bench/pipeline_instructions.py --trees /tmp/base /tmp/head [--requests N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead  # a sibling script, not a package
import pipeline_cpu

_WARM_UP = 30


def _total(dump_dir: Path) -> int:
    """The summed ``totals:`` of the dumps callgrind wrote since the last look, which are then removed."""
    total = 0
    for dump in sorted(dump_dir.glob("cg.*.*")):
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                total += int(line.split()[1])
        dump.unlink()
    return total


def _send(client: httpx.Client, url: str, shape: str, count: int) -> None:
    body = {**overhead.BODY, "model": pipeline_cpu.MODELS[shape], "stream": shape == "stream"}
    for _ in range(count):
        response = client.post(url + "/v1/chat/completions", json=body)
        response.raise_for_status()


def measure_tree(tree: str, policies: Path, requests: int, shapes: list[str]) -> dict[str, float]:
    """Millions of instructions per request for each shape, in one valgrind'd gateway serving ``tree``."""
    dump_dir = Path(tempfile.mkdtemp(prefix="bench-callgrind-"))
    port = overhead.free_port()
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={dump_dir}/cg.%p",
               str(overhead.BIN / "hybrid-gateway"), "serve", "--port", str(port), "--policies", str(policies),
               "--demo", "off", "--workers", "1"]
    # A fixed hash seed: dict and set layouts follow it, and with a random one the same tree's count moves by ~5%.
    system = overhead.start(tree, command, port, "bench", env={"PYTHONPATH": tree, "PYTHONHASHSEED": "0"})
    figures: dict[str, float] = {}
    try:
        with httpx.Client(timeout=60) as client:
            for shape in shapes:
                _send(client, system.url, shape, _WARM_UP)
                subprocess.run(["callgrind_control", "-z", str(system.process.pid)], check=True, capture_output=True)
                _total(dump_dir)
                _send(client, system.url, shape, requests)
                subprocess.run(["callgrind_control", "-d", str(system.process.pid)], check=True, capture_output=True)
                figures[f"{shape}_M_instructions_per_req"] = round(_total(dump_dir) / requests / 1e6, 3)
    finally:
        overhead.stop(system)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", nargs="+", metavar="DIR", required=True)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--shapes", nargs="+", choices=pipeline_cpu.SHAPES, default=list(pipeline_cpu.SHAPES),
                        help="request shapes (a tree older than a shape's policy block cannot load its route)")
    args = parser.parse_args()
    upstream_port = overhead.free_port()
    policies = overhead.policy_dir(upstream_port)
    pipeline_cpu.write_routes(policies, args.shapes)
    direct = overhead.start("direct", [str(overhead.BIN / "hybrid-gateway"), "demo-upstream", "--port",
                                       str(upstream_port), "--latency-scale", "0"], upstream_port, "demo-large")
    try:
        print(json.dumps({tree: measure_tree(tree, policies, args.requests, args.shapes) for tree in args.trees}))
    finally:
        overhead.stop(direct)


if __name__ == "__main__":
    main()
