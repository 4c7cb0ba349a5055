"""``hybrid-gateway eval`` against the demo upstream, every figure checked against values computed here.

The demo upstream answers deterministically, so the test first asks a
reference gateway (plain JSON calls, arm forced by header) for each answer,
its cost header and its usage; builds a test set whose expected answers make
exact match and F1 non-trivial; runs ``eval`` in-process; and recomputes
exact match, F1, similarity (the MiniLM encoder, one text at a time),
latency percentiles, tokens, cost, error rate, the curve and the break-even
on its own.
"""

from __future__ import annotations

import json
import os
import re
import string
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from gateway.cli.main import main
from gateway.demo_upstream import create_demo_app
from gateway.economics.breakeven import Scenario, break_even
from retrieval import MiniLMEncoder
from routes import CalibrationWindow, ScoreSketch, load_classifier
from tests.conftest import GatewayFactory
from tests.support.servers import ServerThread

POLICY = """
version: 1
targets:
  demo-big:
    provider: vllm
    model: demo-large
    api_base: {url}/v1
    price: {{input_per_million: 2.5, output_per_million: 10.0}}
  demo-small:
    provider: vllm
    model: ft:demo-small:hybrid-gateway:support:v1
    api_base: {url}/v1
    price: {{input_per_million: 0.3, output_per_million: 1.2}}
routes:
  qa:
    allow_arm_override: true
    classifier: {{model: fast, strong_share: 0.3}}
    arms:
      prompted: {{target: demo-big, system_prompt: "You answer questions about Lumen Freight precisely."}}
      fine_tuned: {{target: demo-small}}
    economics: {{upfront_usd: 12000, projected_monthly_queries: 500000}}
"""
PRICES = {"prompted": (2.5, 10.0), "fine_tuned": (0.3, 1.2)}
QUESTIONS = [
    "How much does the Growth plan cost?",
    "hi",
    "Explain step by step how to verify a webhook signature, and compare HMAC-SHA256 with RSA signatures "
    "for replay protection, with code in Python and Go.",
    "What is the API rate limit on Starter?",
    "Analyse the trade-offs between annual and monthly billing for a 40-seat team that grows 10% a month; "
    "derive the break-even month.",
    "Where is data hosted?",
]
ARMS = ("prompted", "fine_tuned")


@pytest.fixture(scope="module")
def demo() -> Iterator[ServerThread]:
    server = ServerThread(create_demo_app(0.02)).start()
    yield server
    server.stop()


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's official normalisation, written out again."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def f1(answer: str, expected: str) -> float:
    got, want = normalize_answer(answer).split(), normalize_answer(expected).split()
    common = Counter(got) & Counter(want)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(got), same / len(want)
    return 2 * precision * recall / (precision + recall)


def reference(gateway: ServerThread, question: str, arm: str) -> dict[str, Any]:
    response = httpx.post(gateway.url + "/v1/chat/completions", headers={"x-gateway-arm": arm}, timeout=30,
                          json={"model": "qa", "messages": [{"role": "user", "content": question}]})
    assert response.status_code == 200 and response.headers["x-gateway-arm"] == arm
    body = response.json()
    return {"answer": body["choices"][0]["message"]["content"], "usage": body["usage"],
            "cost": float(response.headers["x-gateway-cost-usd"])}


def test_eval_against_the_demo_upstream(demo: ServerThread, policy_dir: Path, start_gateway: GatewayFactory,
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (policy_dir / "eval.yaml").write_text(POLICY.format(url=demo.url))
    gateway = start_gateway()
    ref = {arm: [reference(gateway, q, arm) for q in QUESTIONS] for arm in ARMS}
    expected = ["The Growth plan costs $349 per month."] * len(QUESTIONS)
    expected[0] = ref["prompted"][0]["answer"]  # exact
    expected[1] = ref["fine_tuned"][1]["answer"].upper() + " !!"  # equal after normalisation
    expected[3] = "Starter allows 60 requests per minute."
    data = tmp_path / "set.jsonl"
    data.write_bytes(b"".join(orjson.dumps({"messages": [{"role": "user", "content": q}], "expected": e,
                                            "metadata": {"id": f"q{i}"}}) + b"\n"
                              for i, (q, e) in enumerate(zip(QUESTIONS, expected, strict=True))))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYBRID_GATEWAY_DATA_DIR", str(tmp_path / "var"))
    out = tmp_path / "out"
    code = main(["eval", "--data", str(data), "--route", "qa", "--policies", str(policy_dir), "--out", str(out),
                 "--concurrency", "3", "--bootstrap-samples", "500", "--no-progress", "--json"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert json.loads(capsys.readouterr().out) == summary
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * len(QUESTIONS) and summary["examples"] == len(QUESTIONS)

    encoder = MiniLMEncoder()
    per_arm: dict[str, dict[str, list[float]]] = {}
    for arm in ARMS:
        mine = sorted((r for r in rows if r["arm"] == arm), key=lambda r: r["example"])
        assert [r["answer"] for r in mine] == [r["answer"] for r in ref[arm]]  # streamed = JSON answer
        assert [r["cost_usd"] for r in mine] == [r["cost"] for r in ref[arm]]
        usage = [r["usage"] for r in ref[arm]]
        inp, outp = PRICES[arm]
        costs = [(u["prompt_tokens"] * inp + u["completion_tokens"] * outp) / 1e6 for u in usage]
        assert [r["cost_usd"] for r in mine] == pytest.approx(costs, abs=1e-8)
        answers = [r["answer"] for r in ref[arm]]
        cosine = [float(encoder.embed([a])[0] @ encoder.embed([e])[0]) for a, e in zip(answers, expected, strict=True)]
        em = [float(normalize_answer(a) == normalize_answer(e)) for a, e in zip(answers, expected, strict=True)]
        f1s = [f1(a, e) for a, e in zip(answers, expected, strict=True)]
        latency = [r["latency_s"] for r in mine]
        ttft = [r["ttft_s"] for r in mine]
        assert all(0 < t <= total for t, total in zip(ttft, latency, strict=True))
        got = summary["arms"][arm]
        assert got["exact_match"] == pytest.approx(np.mean(em))
        assert got["f1"] == pytest.approx(np.mean(f1s))
        assert got["similarity"] == pytest.approx(np.mean(cosine), abs=1e-3)
        assert [r["similarity"] for r in mine] == pytest.approx(cosine, abs=1e-3)
        assert got["json_valid"] is None
        assert got["error_rate"] == 0 and got["errors"] == 0 and got["fallbacks"] == 0
        assert got["latency_p50_s"] == pytest.approx(np.percentile(latency, 50))
        assert got["latency_p95_s"] == pytest.approx(np.percentile(latency, 95))
        assert got["ttft_p50_s"] == pytest.approx(np.percentile(ttft, 50))
        assert got["ttft_p95_s"] == pytest.approx(np.percentile(ttft, 95))
        assert got["prompt_tokens_mean"] == pytest.approx(np.mean([u["prompt_tokens"] for u in usage]))
        assert got["completion_tokens_mean"] == pytest.approx(np.mean([u["completion_tokens"] for u in usage]))
        assert got["cost_per_query_usd"] == pytest.approx(np.mean(costs), abs=1e-9)
        per_arm[arm] = {"f1": f1s, "cost": costs, "em": em}
    assert summary["arms"]["prompted"]["exact_match"] == pytest.approx(1 / 6)
    assert summary["arms"]["fine_tuned"]["exact_match"] == pytest.approx(1 / 6)

    diff = summary["differences"]
    for name, values in (("f1", "f1"), ("exact_match", "em"), ("cost_per_query_usd", "cost")):
        observed = np.mean(per_arm["fine_tuned"][values]) - np.mean(per_arm["prompted"][values])
        assert diff[name]["observed"] == pytest.approx(observed, abs=1e-9)
        assert diff[name]["low"] <= diff[name]["high"] and diff[name]["pairs"] == len(QUESTIONS)
    assert diff["cost_per_query_usd"]["high"] < 0  # the fine-tune is cheaper on every example

    classifier = load_classifier("fast")
    scores = [classifier.score([{"role": "user", "content": q}]).value for q in QUESTIONS]
    assert summary["classifier"]["scores"] == pytest.approx(scores)
    order = sorted(range(len(QUESTIONS)), key=lambda i: -scores[i])
    calibrated = ScoreSketch(classifier.calibration, CalibrationWindow())
    for score in scores:
        calibrated.record(score, False)
    shares = [p["strong_share"] for p in summary["curve"]]
    assert shares == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    for point in summary["curve"]:
        strong = set(order[:round(point["strong_share"] * len(QUESTIONS))])
        arm_of = ["prompted" if i in strong else "fine_tuned" for i in range(len(QUESTIONS))]
        assert point["prompted_examples"] == len(strong)
        assert point["accuracy"] == pytest.approx(np.mean([per_arm[a]["f1"][i] for i, a in enumerate(arm_of)]))
        assert point["cost_per_query_usd"] == pytest.approx(
            np.mean([per_arm[a]["cost"][i] for i, a in enumerate(arm_of)]))
        # the cut the route's live calibration reaches on these scores (warm start included)
        assert point["threshold"] == pytest.approx(calibrated.cut(point["strong_share"]).threshold)

    recommendation = summary["recommendation"]
    chosen = recommendation["chosen"]
    prompted_point = summary["curve"][-1]
    bar = np.mean(per_arm["prompted"]["f1"]) - 0.02
    assert recommendation["bar"] == pytest.approx(bar)
    cheapest = min((p for p in summary["curve"] if p["accuracy"] >= bar), key=lambda p: p["cost_per_query_usd"])
    # The demo's fine-tune is within the tolerance of prompting at a tenth of the cost: case 3, scale.
    assert chosen == cheapest and chosen["strong_share"] == 0.0
    be = break_even(Scenario(volume=500_000, prompted_per_query=prompted_point["cost_per_query_usd"],
                             fine_tuned_per_query=chosen["cost_per_query_usd"], upfront=12_000))
    assert be.months_to_break_even is not None and be.months_to_break_even < 24
    assert recommendation["break_even"]["months_to_break_even"] == pytest.approx(be.months_to_break_even)
    assert recommendation["verdict"] == "fine_tuned" and recommendation["cases"]["scale_optimisation"]


def test_the_shipped_support_route_works_out_of_the_box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process mode with the shipped policies starts the demo upstream itself; answers are grounded."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYBRID_GATEWAY_DEMO_URL", raising=False)
    monkeypatch.delenv("HYBRID_GATEWAY_POLICIES", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("HYBRID_GATEWAY_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("HYBRID_GATEWAY_DEMO_LATENCY_SCALE", "0")
    shipped = Path(__file__).resolve().parents[2] / "gateway" / "evaluation" / "examples" / "support.jsonl"
    out = tmp_path / "out"
    assert main(["eval", "--data", str(shipped), "--route", "support", "--limit", "3", "--out", str(out),
                 "--no-progress", "--bootstrap-samples", "200"]) == 0
    rows = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    assert sorted((r["example"], r["arm"]) for r in rows) == [(i, arm) for i in range(3) for arm in sorted(ARMS)]
    assert all(r["ok"] and r["served_arm"] == r["arm"] and r["rag"] == "hit" for r in rows)
    assert {r["target"] for r in rows} == {"demo-large", "demo-small-ft"}
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["examples"], summary["examples_in_set"]) == (3, 16)
    assert summary["recommendation"]["break_even"]["monthly_volume"] == 50_000  # the route's economics block
    assert "HYBRID_GATEWAY_DEMO_URL" not in os.environ
