"""`hybrid-gateway serve` as a user runs it: the embedded default with the demo upstream, one or two workers."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.polling import poll
from tests.support.process import GatewayProcess


@pytest.fixture(scope="module")
def served() -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(env={"HYBRID_GATEWAY_DEMO_LATENCY_SCALE": "0"}).start()
    yield gateway
    gateway.stop()


def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)


@pytest.mark.multiprocess
def test_demo_route_answers_with_its_system_prompt(served: GatewayProcess) -> None:
    raw = client(served).chat.completions.with_raw_response.create(
        model="support", messages=[{"role": "user", "content": "How do refunds work?"}],
        extra_headers={"x-gateway-arm": "prompted"})
    answer = raw.parse().choices[0].message.content or ""
    assert raw.headers["x-gateway-target"] == "demo-large"
    assert "customer support assistant of Lumen Freight" in answer
    assert "How do refunds work?" in answer
    assert float(raw.headers["x-gateway-cost-usd"]) > 0
    # The shipped demo knowledge was ingested at start and is cited.
    assert raw.headers["x-gateway-rag"] == "hit"
    assert raw.headers["x-gateway-sources"].split(",")[0] == "refund-policy.md"
    assert "According to [1] (refund-policy.md):" in answer


@pytest.mark.multiprocess
def test_classifier_sends_simple_and_hard_prompts_to_different_arms(served: GatewayProcess) -> None:
    arms = {}
    for kind, prompt in [("simple", "Where is my parcel LF-123?"),
                         ("hard", "Prove that the sum of the first n odd numbers equals n^2, then derive a closed "
                                  "form for the sum of the squares of the first n integers, step by step.")]:
        raw = client(served).chat.completions.with_raw_response.create(
            model="support", messages=[{"role": "user", "content": prompt}], user=f"{kind}-user")
        arms[kind] = (raw.headers["x-gateway-arm"], float(raw.headers["x-gateway-score"]))
        assert raw.headers["x-gateway-experiment"] == "support-tone"
    assert arms["simple"][0] == "fine_tuned" and arms["hard"][0] == "prompted"
    assert arms["simple"][1] < arms["hard"][1]


@pytest.mark.multiprocess
def test_demo_tool_calls_parse_in_the_sdk(served: GatewayProcess) -> None:
    tools = [{"type": "function", "function": {"name": "track_parcel", "parameters": {
        "type": "object", "properties": {"tracking_id": {"type": "string"}, "notify": {"type": "boolean"}}}}}]
    completion = client(served).chat.completions.create(
        model="support", messages=[{"role": "user", "content": "Where is LF-123?"}], tools=tools)
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "track_parcel"
    assert json.loads(call.function.arguments) == {"tracking_id": "example", "notify": True}


@pytest.mark.multiprocess
def test_demo_streams_and_fine_tuned_arm_is_cheaper(served: GatewayProcess) -> None:
    costs = {}
    for arm in ("prompted", "fine_tuned"):
        response = httpx.post(served.url + "/v1/chat/completions", headers={"x-gateway-arm": arm}, timeout=30,
                              json={"model": "support", "stream": True,
                                    "messages": [{"role": "user", "content": "Which plans exist?"}]})
        assert response.content.endswith(b"data: [DONE]\n\n")
        costs[arm] = float(response.content.split(b": x-gateway-cost-usd=")[1].split(b"\n")[0])
    assert 0 < costs["fine_tuned"] < costs["prompted"]


@pytest.mark.multiprocess
def test_demo_embeddings(served: GatewayProcess) -> None:
    result = client(served).embeddings.create(model="demo-embed", input=["a", "b"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 64


@pytest.mark.multiprocess
def test_two_workers_share_metrics() -> None:
    gateway = GatewayProcess("--workers", "2", env={"HYBRID_GATEWAY_DEMO_LATENCY_SCALE": "0"}).start()
    try:
        total = 0.0
        for _ in range(12):
            response = httpx.post(gateway.url + "/v1/chat/completions",
                                  json={"model": "support", "messages": [{"role": "user", "content": "hi"}]})
            total += float(response.headers["x-gateway-cost-usd"])
        metrics = httpx.get(gateway.url + "/metrics").text
        counted = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                      if line.startswith("gateway_requests_total{"))
        cost = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                   if line.startswith("gateway_cost_usd_total{"))
        assert counted == 12
        assert cost == pytest.approx(total, abs=1e-7)
    finally:
        gateway.stop()


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (an exited child that nobody reaped yet is a zombie, not alive)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.multiprocess
@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_stops_the_demo_upstream_too(workers: str) -> None:
    gateway = GatewayProcess("--workers", workers).start()
    assert gateway.process is not None
    pid = gateway.process.pid
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    [demo] = [c for c in children if "demo-upstream" in Path(f"/proc/{c}/cmdline").read_text()]
    try:
        os.kill(pid, signal.SIGTERM)  # the gateway alone, as Kubernetes or a terminal would
        gateway.process.communicate(timeout=30)
        poll(lambda: not _alive(demo), "the demo upstream to exit with the gateway")
    finally:
        gateway.stop()
