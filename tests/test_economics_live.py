"""The live break-even view: observed volume and costs per query through the guide's arithmetic."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gateway.observed_economics import SECONDS_PER_MONTH
from tests.conftest import GatewayFactory
from tests.support.fake_upstream import FakeUpstream
from tests.support.metrics import metric_sum
from tests.support.policies import econ_route
from tests.support.servers import ServerThread

ECON = "version: 1\nroutes:" + econ_route(projected_monthly_queries=1_000_000)
BIG = (11 * 2.0 + 5 * 8.0) / 1e6  # the fake's usage at the big target's policy prices


@pytest.fixture
def gateway(start_gateway: GatewayFactory, policy_dir: Path, fake: FakeUpstream) -> ServerThread:
    (policy_dir / "econ.yaml").write_text(ECON)
    return start_gateway()


def test_observed_economics_follow_the_traffic(gateway: ServerThread) -> None:
    costs = []
    for arm in ["fine_tuned"] * 6 + ["prompted"] * 2:
        response = httpx.post(gateway.url + "/v1/chat/completions", headers={"x-gateway-arm": arm},
                              json={"model": "econ", "messages": [{"role": "user", "content": "hi"}]})
        costs.append(float(response.headers["x-gateway-cost-usd"]))
    [entry] = httpx.get(gateway.url + "/v1/economics").json()["routes"]
    assert entry["requests"] == 8
    assert entry["actual_cost_per_query_usd"] == pytest.approx(sum(costs) / 8)
    assert entry["prompted_only_cost_per_query_usd"] == pytest.approx(BIG)
    rate = 8 / (entry["window_s"] / SECONDS_PER_MONTH)
    assert entry["observed_monthly_queries"] == pytest.approx(rate, rel=1e-6)
    assert entry["volume_share_of_projection"] == pytest.approx(rate / 1_000_000, rel=1e-6)
    fixed = 0.01 + 0.03 / 3
    assert entry["fixed_monthly_usd"] == pytest.approx(fixed)
    savings = rate * (BIG - sum(costs) / 8) - fixed
    assert entry["savings_monthly_usd"] == pytest.approx(savings, rel=1e-6)
    assert entry["months_to_break_even"] == pytest.approx(0.5 / savings, rel=1e-6)

    run = subprocess.run([sys.executable, "-m", "gateway.cli", "breakeven", "--from", gateway.url, "--json"],
                         capture_output=True, text=True, check=True)
    [row] = json.loads(run.stdout)
    # The CLI reads the view a moment later, over a longer window: check its arithmetic at the volume it saw.
    assert row["volume"] <= rate
    later_savings = row["volume"] * (BIG - sum(costs) / 8) - fixed
    assert row["months_to_break_even"] == pytest.approx(0.5 / later_savings, rel=1e-6)


def test_economics_gauges_follow_the_view(gateway: ServerThread) -> None:
    for _ in range(3):
        httpx.post(gateway.url + "/v1/chat/completions",
                   json={"model": "econ", "messages": [{"role": "user", "content": "hi"}]})
    metrics = httpx.get(gateway.url + "/metrics").text

    def gauge(quantity: str) -> float:
        return metric_sum(metrics, "gateway_economics", route="econ", quantity=quantity)

    # One scrape is one consistent view: the break-even follows from the volume and costs it exports.
    assert gauge("upfront_usd") == 0.5
    per_query_saving = gauge("prompted_only_cost_per_query_usd") - gauge("actual_cost_per_query_usd")
    assert per_query_saving > 0
    savings = gauge("observed_monthly_queries") * per_query_saving - (0.01 + 0.03 / 3)
    assert gauge("savings_monthly_usd") == pytest.approx(savings, rel=1e-9)
    assert gauge("months_to_break_even") == pytest.approx(0.5 / savings, rel=1e-9)
