"""Gateway CPU per request on three request shapes: a plain route, a classifier route, a stream.

One worker behind the zero-delay demo upstream; wrk at concurrency 1 drives each shape in turn
(reusing ``bench/overhead.py``'s servers and wrk runner). CPU per request is the gateway's process
tree CPU over the run divided by the requests served; "added p50" is the gateway's c=1 p50 minus
the direct upstream's in the same round. The streamed shape is the demo upstream's SSE answer.
Rounds alternate, the report is each figure's median. Run two trees alternately to compare them
(``PYTHONPATH=<other checkout>`` makes the servers import that tree's packages).

    .venv/bin/python bench/pipeline_cpu.py [--rounds R] [--duration S]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead  # a sibling script, not a package

POLICY = """version: 1
targets:
  upstream:
    provider: vllm
    model: demo-large
    api_base: http://127.0.0.1:{port}/v1
    price: {{input_per_million: 2.5, output_per_million: 10}}
routes:
  bench:
    arms:
      prompted: {{target: upstream}}
  fast:
    classifier: {{model: fast, threshold: 0.5}}
    arms:
      prompted: {{target: upstream}}
      fine_tuned: {{target: upstream}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    args = parser.parse_args()
    policies = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    upstream_port, gateway_port = overhead.free_port(), overhead.free_port()
    (policies / "bench.yaml").write_text(POLICY.format(port=upstream_port))
    direct = overhead.start("direct", [str(overhead.BIN / "hybrid-gateway"), "demo-upstream", "--port",
                                       str(upstream_port), "--latency-scale", "0"], upstream_port, "demo-large")
    gateway = overhead.start("gateway", [str(overhead.BIN / "hybrid-gateway"), "serve", "--port", str(gateway_port),
                                         "--policies", str(policies), "--demo", "off", "--workers", "1"],
                             gateway_port, "bench")
    classifier = overhead.System("gateway", gateway.url, "fast", gateway.process, None, 0)
    figures: dict[str, list[float]] = {}
    try:
        for _ in range(args.rounds):
            base = overhead.wrk(direct, 1, args.duration)["p50_ms"]
            plain, routed = overhead.wrk(gateway, 1, args.duration), overhead.wrk(classifier, 1, args.duration)
            body, overhead.BODY = overhead.BODY, {**overhead.BODY, "stream": True}
            try:
                streamed = overhead.wrk(gateway, 1, args.duration)
            finally:
                overhead.BODY = body
            round_figures = {"plain_cpu_ms_per_req": plain["cpu_ms_per_req"],
                             "classifier_cpu_ms_per_req": routed["cpu_ms_per_req"],
                             "stream_cpu_ms_per_req": streamed["cpu_ms_per_req"],
                             "plain_c1_added_p50_ms": plain["p50_ms"] - base,
                             "classifier_c1_added_p50_ms": routed["p50_ms"] - base}
            for key, value in round_figures.items():
                figures.setdefault(key, []).append(value)
            print(json.dumps(round_figures), file=sys.stderr)
    finally:
        overhead.stop(gateway)
        overhead.stop(direct)
    print(json.dumps({key: round(statistics.median(values), 3) for key, values in figures.items()}))


if __name__ == "__main__":
    main()
