"""Retrain the router on a route's own captured traffic and compare it with the shipped model (issue 14).

The loop of docs/capture.md, end to end on the demo upstream: a route whose prompted arm answers every
question and whose shadow is the demo's early fine-tune (``...:support:v0``, which hedges on long or
reasoning questions); mixed traffic (short support questions and public routing prompts from
``../shared/data/routing``, MMLU and GSM8K) forced to the prompted arm so every prompt gets both answers;
``dataset labels`` grades each shadow answer against the prompted one; ``router train --kind static`` on
those labels; ``router eval`` of the retrained and the shipped ``fast`` model on the labels' held-out fifth.

    .venv/bin/python bench/router_retraining.py [--support N] [--public N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from gateway.capture import CaptureStore
from routes.training.data import load_examples

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: the tests' support traffic
sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead  # a sibling script, not a package

from tests.support.support_traffic import support_questions

ROUTING_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "routing"
POLICY = """version: 1
targets:
  big: {{provider: vllm, model: demo-large, api_base: "http://127.0.0.1:{port}/v1",
        price: {{input_per_million: 2.5, output_per_million: 10}}}}
  early-ft: {{provider: vllm, model: "ft:demo-small:hybrid-gateway:support:v0", api_base: "http://127.0.0.1:{port}/v1",
             price: {{input_per_million: 0.3, output_per_million: 1.2}}}}
routes:
  retrain:
    allow_arm_override: true
    capture: {{share: 1.0}}
    shadow: {{target: early-ft, share: 1.0}}
    arms:
      prompted: {{target: big, system_prompt: "You are the Lumen Freight support desk."}}
      fine_tuned: {{target: early-ft}}
"""


def _prompts(support: int, public: int) -> list[str]:
    asked = support_questions(support, seed=3)
    for folder in ("mmlu", "gsm8k"):
        asked += [example.prompt for example in load_examples(ROUTING_DATA / folder, "all")[:public]]
    return asked


async def _send(url: str, prompts: list[str], concurrency: int = 8) -> None:
    queue = iter(prompts)

    async def worker(client: httpx.AsyncClient) -> None:
        for prompt in queue:
            response = await client.post("/v1/chat/completions", headers={"x-gateway-arm": "prompted"}, json={
                "model": "retrain", "messages": [{"role": "user", "content": prompt[:4000]}]})
            response.raise_for_status()

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))


def _cli(*args: str) -> str:
    done = subprocess.run([str(overhead.BIN / "hybrid-gateway"), *args], capture_output=True, text=True, check=True)
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--support", type=int, default=400, help="support questions")
    parser.add_argument("--public", type=int, default=300, help="prompts from each of MMLU and GSM8K")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-retrain-"))
    (work / "policies").mkdir()
    upstream_port, gateway_port = overhead.free_port(), overhead.free_port()
    (work / "policies" / "retrain.yaml").write_text(POLICY.format(port=upstream_port))
    demo = overhead.start("demo", [str(overhead.BIN / "hybrid-gateway"), "demo-upstream", "--port",
                                   str(upstream_port), "--latency-scale", "0"], upstream_port, "demo-large")
    gateway = overhead.start("gateway", [str(overhead.BIN / "hybrid-gateway"), "serve", "--port", str(gateway_port),
                                         "--policies", str(work / "policies"), "--demo", "off"], gateway_port,
                             "retrain", env={"HYBRID_GATEWAY_DATA_DIR": str(work / "var"),
                                             "HYBRID_GATEWAY_ACCESS_LOG": "0"})
    prompts = _prompts(args.support, args.public)
    try:
        asyncio.run(_send(gateway.url, prompts))
    finally:
        overhead.stop(gateway)  # its writer stores what is queued and the shadows drain before it exits
        overhead.stop(demo)
    store = CaptureStore.open(None, work / "var")
    captured, paired = len(store.read("retrain")), len(store.shadows("retrain"))
    labels = work / "labels"
    summary = _cli("dataset", "labels", "--route", "retrain", "--out", str(labels), "--policies",
                   str(work / "policies"), "--data-dir", str(work / "var"))
    _cli("router", "train", "--data", str(labels), "--kind", "static", "--out", str(work / "router.npz"))
    reports = {name: json.loads(_cli("router", "eval", "--data", str(labels), "--model", model, "--json"))
               for name, model in (("retrained", str(work / "router.npz")), ("shipped fast", "fast"))}
    print(json.dumps({"prompts": len(prompts), "captured": captured, "paired": paired, "labels": summary.strip(),
                      "eval": reports}, indent=2))


if __name__ == "__main__":
    main()
