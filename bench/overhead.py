"""Gateway overhead, side by side in one run: direct upstream vs hybrid-gateway (vs the LiteLLM proxy).

The same zero-delay upstream (the demo upstream with ``--latency-scale 0``)
serves all three; wrk drives the same body at concurrency 1 and 64, and a
small aiohttp client measures streaming time to first token at concurrency 16.
CPU per request is each server's process tree CPU time (user + system) over a
wrk run divided by the requests wrk completed: unlike latency, it barely
depends on what else the shared machine runs. Rounds rotate the systems so
drift on a shared machine hits each alike; the report gives the median round.

    .venv/bin/python bench/overhead.py [--litellm] [--workers N] [--duration S] [--rounds R]

``--litellm`` needs the proxy in its own virtualenv:
``python3 -m venv bench/.venv-litellm && bench/.venv-litellm/bin/pip install 'litellm[proxy]'``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LITELLM = ROOT / "bench" / ".venv-litellm" / "bin" / "litellm"
BODY = {"model": "MODEL", "messages": [{"role": "user", "content": "What is the refund policy for annual plans?"}]}
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_FIRST_TOKEN = re.compile(rb'"content":\s*"[^"]')  # a delta with non-empty content


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class System:
    name: str
    url: str
    model: str
    process: subprocess.Popen[bytes]
    key: str | None = None
    started_in_s: float = 0.0

    def pids(self) -> list[int]:
        """The server process and its direct children (uvicorn workers)."""
        pids = [self.process.pid]
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
        return pids

    def cpu_s(self) -> float:
        """User + system CPU seconds the process tree has used so far (``/proc/PID/stat`` utime + stime)."""
        ticks = 0
        for pid in self.pids():
            stat = Path(f"/proc/{pid}/stat")
            if stat.exists():
                fields = stat.read_text().rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        """Resident memory of the process tree (server and its workers)."""
        total = 0
        for pid in self.pids():
            status = Path(f"/proc/{pid}/status")
            if status.exists():
                match = re.search(r"VmRSS:\s+(\d+) kB", status.read_text())
                total += int(match.group(1)) if match else 0
        return total / 1024


def wait_ready(url: str, process: subprocess.Popen[bytes], model: str, key: str | None, timeout_s: float = 120) -> float:
    """Seconds from now until one chat completion succeeds."""
    began = time.monotonic()
    headers = {"authorization": f"Bearer {key}"} if key else {}
    body = {**BODY, "model": model}
    with httpx.Client(timeout=5) as client:
        while time.monotonic() - began < timeout_s:
            if process.poll() is not None:
                raise RuntimeError(f"{url} exited with {process.returncode}")
            try:
                if client.post(url + "/v1/chat/completions", json=body, headers=headers).status_code == 200:
                    return time.monotonic() - began
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    raise RuntimeError(f"{url} not ready after {timeout_s} s")


def start(name: str, command: list[str], port: int, model: str, env: dict[str, str] | None = None,
          key: str | None = None, output: Path | None = None) -> System:
    """Start ``command`` and wait for its first completion; its stdout and stderr go to ``output`` (else nowhere)."""
    began = time.monotonic()
    sink = output.open("wb") if output is not None else subprocess.DEVNULL
    process = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=sink, stderr=sink,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, process, model, key)
    return System(name, url, model, process, key, time.monotonic() - began)


def stop(system: System) -> None:
    os.killpg(system.process.pid, signal.SIGTERM)
    system.process.wait(timeout=30)


def policy_dir(upstream_port: int) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="bench-policies-"))
    (directory / "bench.yaml").write_text(f"""version: 1
targets:
  upstream:
    provider: vllm
    model: demo-large
    api_base: http://127.0.0.1:{upstream_port}/v1
    price: {{input_per_million: 2.5, output_per_million: 10}}
routes:
  bench:
    arms:
      prompted: {{target: upstream}}
""")
    return directory


def litellm_config(upstream_port: int) -> Path:
    path = Path(tempfile.mkdtemp(prefix="bench-litellm-")) / "config.yaml"
    path.write_text(f"""model_list:
  - model_name: bench
    litellm_params:
      model: openai/demo-large
      api_base: http://127.0.0.1:{upstream_port}/v1
      api_key: sk-unused
""")
    return path


def wrk(system: System, connections: int, duration: int) -> dict[str, float]:
    script = Path(tempfile.mkdtemp(prefix="bench-wrk-")) / "post.lua"
    auth = f'wrk.headers["Authorization"] = "Bearer {system.key}"\n' if system.key else ""
    body = json.dumps({**BODY, "model": system.model})
    script.write_text(f'wrk.method = "POST"\nwrk.body = [[{body}]]\n'
                      f'wrk.headers["Content-Type"] = "application/json"\n{auth}')
    cpu_before = system.cpu_s()
    output = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "30s", "--latency", "-s", str(script),
                             system.url + "/v1/chat/completions"], capture_output=True, text=True, check=True).stdout
    cpu_used = system.cpu_s() - cpu_before
    if "Non-2xx" in output:
        raise RuntimeError(f"{system.name} answered errors under load:\n{output}")

    def percentile(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        assert match, output
        return float(match.group(1)) * _UNITS[match.group(2)]

    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    served = re.search(r"(\d+) requests in", output)
    assert rate and served, output
    return {"rps": float(rate.group(1)), "p50_ms": percentile("50"), "p99_ms": percentile("99"),
            "cpu_ms_per_req": cpu_used * 1000 / int(served.group(1))}


async def _ttft(system: System, concurrency: int, requests: int, pause_ms: float) -> list[float]:
    """Closed loop with ``concurrency`` streams; each stream waits ~``pause_ms`` between requests."""
    import aiohttp

    rng = random.Random(7)
    headers = {"authorization": f"Bearer {system.key}"} if system.key else {}
    body = {**BODY, "model": system.model, "stream": True}
    samples: list[float] = []
    queue = iter(range(requests))

    async def worker(session: aiohttp.ClientSession) -> None:
        for _ in queue:
            if pause_ms:
                await asyncio.sleep(rng.uniform(0, 2 * pause_ms) / 1000)
            began = time.perf_counter()
            async with session.post(system.url + "/v1/chat/completions", json=body, headers=headers) as response:
                first = None
                async for data in response.content.iter_any():  # reads, not lines: the client stays cheap
                    if first is None and _FIRST_TOKEN.search(data):
                        first = time.perf_counter() - began
                samples.append((first or 0.0) * 1000)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return samples


def ttft(system: System, concurrency: int, requests: int, pause_ms: float = 0.0) -> dict[str, float]:
    samples = asyncio.run(_ttft(system, concurrency, requests, pause_ms))
    ordered = sorted(samples)
    return {"ttft_p50_ms": statistics.median(ordered), "ttft_p99_ms": ordered[int(len(ordered) * 0.99) - 1]}


def cold_start() -> dict[str, float]:
    """Command to first served completion on the embedded default, with the demo upstream."""
    port, demo = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYBRID_GATEWAY_", "OPENAI_"))}
    began = time.monotonic()
    process = subprocess.Popen([str(BIN / "hybrid-gateway"), "serve", "--port", str(port), "--demo-port", str(demo)],
                               env={**env, "HYBRID_GATEWAY_DEMO_LATENCY_SCALE": "0"}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    system = System("cold", f"http://127.0.0.1:{port}", "support", process)
    wait_ready(system.url, process, "support", None)
    seconds = time.monotonic() - began
    rss = system.rss_mb()
    stop(system)
    return {"cold_start_s": seconds, "rss_mb_gateway_and_demo": rss}


def run(args: argparse.Namespace) -> dict[str, object]:
    upstream_port = free_port()
    upstream = start("direct", [str(BIN / "hybrid-gateway"), "demo-upstream", "--port", str(upstream_port),
                                "--latency-scale", "0"], upstream_port, "demo-large")
    systems = [upstream]
    gateway_port = free_port()
    systems.append(start("hybrid-gateway", [str(BIN / "hybrid-gateway"), "serve", "--port", str(gateway_port),
                                            "--policies", str(policy_dir(upstream_port)), "--demo", "off",
                                            "--workers", str(args.workers)], gateway_port, "bench"))
    if args.litellm:
        port = free_port()
        systems.append(start("litellm-proxy", [str(LITELLM), "--config", str(litellm_config(upstream_port)),
                                               "--host", "127.0.0.1", "--port", str(port),
                                               "--num_workers", str(args.workers)], port, "bench",
                             env={"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MASTER_KEY": "sk-bench"},
                             key="sk-bench"))
    rounds: dict[str, list[dict[str, float]]] = {s.name: [] for s in systems}
    try:
        for round_index in range(args.rounds):
            order = systems[round_index % len(systems):] + systems[:round_index % len(systems)]
            for system in order:
                figures = {f"c1_{k}": v for k, v in wrk(system, 1, args.duration).items()}
                figures |= {f"c64_{k}": v for k, v in wrk(system, 64, args.duration).items()}
                figures |= {f"c16_{k}": v for k, v in ttft(system, 16, args.ttft_requests).items()}
                figures |= {f"c16paced_{k}": v for k, v in ttft(system, 16, args.ttft_requests,
                                                                 args.ttft_pause_ms).items()}
                rounds[system.name].append(figures)
                print(f"round {round_index + 1} {system.name}: {json.dumps(figures)}", file=sys.stderr)
        memory = {s.name: s.rss_mb() for s in systems}
    finally:
        for system in reversed(systems):
            stop(system)
    median = {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]} for name, runs in rounds.items()}
    for system in systems:
        median[system.name]["rss_mb"] = memory[system.name]
        median[system.name]["start_s"] = system.started_in_s
    return {"workers": args.workers, "duration_s": args.duration, "rounds": args.rounds, "median": median,
            "ttft_pause_ms": args.ttft_pause_ms,
            "cold_start": cold_start()}


def report(result: dict[str, object]) -> str:
    median: dict[str, dict[str, float]] = result["median"]  # type: ignore[assignment]
    direct, gateway = median["direct"], median["hybrid-gateway"]
    columns = ["c1_p50_ms", "c1_p99_ms", "c1_rps", "c1_cpu_ms_per_req", "c64_p50_ms", "c64_p99_ms", "c64_rps",
               "c64_cpu_ms_per_req", "c16_ttft_p50_ms", "c16_ttft_p99_ms", "c16paced_ttft_p50_ms",
               "c16paced_ttft_p99_ms", "rss_mb", "start_s"]
    lines = ["| system | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, figures in median.items():
        lines.append(f"| {name} | " + " | ".join(f"{figures[c]:.3f}" if "ms" in c else f"{figures[c]:.1f}"
                                                 for c in columns) + " |")
    lines.append("")
    lines.append(f"- gateway added latency at c1, p50: {gateway['c1_p50_ms'] - direct['c1_p50_ms']:.3f} ms")
    lines.append(f"- gateway CPU per request (its process tree, user + system), c1: {gateway['c1_cpu_ms_per_req']:.3f} ms, "
                 f"c64: {gateway['c64_cpu_ms_per_req']:.3f} ms")
    lines.append(f"- gateway added TTFT at c16, back to back (CPU saturated), p50: "
                 f"{gateway['c16_ttft_p50_ms'] - direct['c16_ttft_p50_ms']:.3f} ms")
    lines.append(f"- gateway added TTFT at c16, streams pausing ~{result['ttft_pause_ms']:.0f} ms between requests, p50: "
                 f"{gateway['c16paced_ttft_p50_ms'] - direct['c16paced_ttft_p50_ms']:.3f} ms")
    lines.append(f"- gateway throughput at c64 / direct: {gateway['c64_rps'] / direct['c64_rps']:.1%}")
    if "litellm-proxy" in median:
        proxy = median["litellm-proxy"]
        lines.append(f"- gateway throughput at c64 / LiteLLM proxy: {gateway['c64_rps'] / proxy['c64_rps']:.1f}x")
        lines.append(f"- gateway p99 at c64 / LiteLLM proxy p99: {gateway['c64_p99_ms'] / proxy['c64_p99_ms']:.3f}")
        lines.append(f"- LiteLLM proxy added latency at c1, p50: {proxy['c1_p50_ms'] - direct['c1_p50_ms']:.3f} ms")
    cold: dict[str, float] = result["cold_start"]  # type: ignore[assignment]
    lines.append(f"- cold start, command to first served completion (embedded default): {cold['cold_start_s']:.2f} s; "
                 f"RSS gateway worker + demo upstream: {cold['rss_mb_gateway_and_demo']:.0f} MB")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--litellm", action="store_true", help="also measure the LiteLLM proxy")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ttft-requests", type=int, default=400)
    parser.add_argument("--ttft-pause-ms", type=float, default=50.0,
                        help="mean pause between a stream's requests in the paced TTFT run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
