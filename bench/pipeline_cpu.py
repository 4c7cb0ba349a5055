"""Gateway CPU per request on three request shapes: a plain route, a classifier route, a stream.

One worker behind the zero-delay demo upstream; wrk at concurrency 1 drives each shape in turn
(reusing ``bench/overhead.py``'s servers and wrk runner). CPU per request is the gateway's process
tree CPU over the run divided by the requests served; "added p50" is the gateway's c=1 p50 minus
the direct upstream's in the same round. The streamed shape is the demo upstream's SSE answer.
Rounds alternate, the report is each figure's median. Run two trees alternately to compare them
(``PYTHONPATH=<other checkout>`` makes the servers import that tree's packages).

    .venv/bin/python bench/pipeline_cpu.py [--rounds R] [--duration S]

On a shared machine whose load swings from run to run, compare trees side by side instead:
``--trees A B`` serves each tree (a directory such as ``git archive <commit> | tar -x -C A``) from its
own gateway behind the same upstream and alternates short wrk bursts between them, shape by shape,
so both see the same load; the report gives each tree's median per figure over the bursts.

    .venv/bin/python bench/pipeline_cpu.py --trees /tmp/base /tmp/head [--rounds R] [--duration S]

The ``cascade`` shape (a ``strategy: cascade`` route whose fine-tuned answer is accepted, one upstream call)
against ``plain`` gives what a cascade adds to a routed request; ``cache-miss`` (a route whose cache looks
every request up and keeps nothing: its answers exceed the entry limit) and ``cache-hit`` (every request after
the first answered from the cache) what the response cache adds and saves:

    .venv/bin/python bench/pipeline_cpu.py --shapes plain cascade --rounds 6 --duration 3
    .venv/bin/python bench/pipeline_cpu.py --shapes plain cache-miss cache-hit --rounds 8 --duration 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead  # a sibling script, not a package

CLASSIFIER_ROUTE = """version: 1
routes:
  fast:
    classifier: {model: fast, threshold: 0.5}
    arms:
      prompted: {target: upstream}
      fine_tuned: {target: upstream}
"""
CASCADE_ROUTE = """version: 1
routes:
  cascade:
    default_arm: fine_tuned
    strategy: cascade
    acceptors: {reject: ["not sure", "i don't know"], min_chars: 1}
    arms:
      prompted: {target: upstream}
      fine_tuned: {target: upstream}
"""

CACHE_ROUTES = """version: 1
routes:
  cache-miss:  # its answers are larger than it keeps: every request looks up, misses and calls upstream
    cache: {allow_sampled: true, max_entry_bytes: 256}
    arms: {prompted: {target: upstream}}
  cache-hit:
    cache: {allow_sampled: true, ttl_s: 3600}
    arms: {prompted: {target: upstream}}
"""

SHAPES = ("plain", "classifier", "stream", "cascade", "cache-miss", "cache-hit")
MODELS = {"plain": "bench", "classifier": "fast", "stream": "bench", "cascade": "cascade",
          "cache-miss": "cache-miss", "cache-hit": "cache-hit"}


def write_routes(policies: Path, shapes: list[str]) -> None:
    """The routes ``shapes`` call, beside ``overhead.policy_dir``'s plain one."""
    (policies / "fast.yaml").write_text(CLASSIFIER_ROUTE)
    if "cascade" in shapes:
        (policies / "cascade.yaml").write_text(CASCADE_ROUTE)
    if {"cache-miss", "cache-hit"} & set(shapes):
        (policies / "cache.yaml").write_text(CACHE_ROUTES)


def measure(system: overhead.System, shape: str, duration: int) -> dict[str, float]:
    """One wrk run at c=1 of ``shape`` against ``system`` (a gateway: ``bench`` is plain, ``fast`` classified,
    ``cascade`` a cascade whose fine-tuned answer is accepted: one upstream call)."""
    model = MODELS[shape]
    target = overhead.System(system.name, system.url, model, system.process, None, 0)
    body = overhead.BODY
    if shape == "stream":
        overhead.BODY = {**body, "stream": True}
    try:
        return overhead.wrk(target, 1, duration)
    finally:
        overhead.BODY = body


def start_gateway(policies: Path, tree: str | None) -> overhead.System:
    port = overhead.free_port()
    env = {"PYTHONPATH": tree} if tree is not None else None
    return overhead.start(tree or "gateway", [str(overhead.BIN / "hybrid-gateway"), "serve", "--port", str(port),
                                              "--policies", str(policies), "--demo", "off", "--workers", "1"],
                          port, "bench", env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--trees", nargs="+", metavar="DIR", help="serve these trees side by side, alternating")
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES),
                        help="request shapes (a tree older than strategy: cascade cannot load the cascade route)")
    args = parser.parse_args()
    upstream_port = overhead.free_port()
    policies = overhead.policy_dir(upstream_port)  # the zero-delay upstream's target and the plain route
    write_routes(policies, args.shapes)
    direct = overhead.start("direct", [str(overhead.BIN / "hybrid-gateway"), "demo-upstream", "--port",
                                       str(upstream_port), "--latency-scale", "0"], upstream_port, "demo-large")
    gateways: list[overhead.System] = []
    figures: dict[str, dict[str, list[float]]] = {}
    try:
        gateways = [start_gateway(policies, tree) for tree in (args.trees or [None])]
        for round_index in range(args.rounds):
            base = overhead.wrk(direct, 1, args.duration)["p50_ms"]
            for shape in args.shapes:
                shift = round_index % len(gateways)  # who goes first alternates from round to round
                for gateway in gateways[shift:] + gateways[:shift]:
                    run = measure(gateway, shape, args.duration)
                    tree = figures.setdefault(gateway.name, {})
                    tree.setdefault(f"{shape}_cpu_ms_per_req", []).append(run["cpu_ms_per_req"])
                    if shape != "stream":
                        tree.setdefault(f"{shape}_c1_added_p50_ms", []).append(run["p50_ms"] - base)
            print(json.dumps({name: {key: round(values[-1], 3) for key, values in tree.items()}
                              for name, tree in figures.items()}), file=sys.stderr)
    finally:
        for system in [*gateways, direct]:
            overhead.stop(system)
    medians = {name: {key: round(statistics.median(values), 3) for key, values in tree.items()}
               for name, tree in figures.items()}
    print(json.dumps(medians if args.trees else medians["gateway"]))


if __name__ == "__main__":
    main()
