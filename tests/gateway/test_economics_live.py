"""The live break-even view and ``breakeven --from``: one calculation, per route, with its inputs named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.economics.observed import SECONDS_PER_MONTH
from gateway.settings import EconomicsSettings, digest_key
from tests.conftest import GatewayFactory
from tests.support.clock import FakeClock
from tests.support.fake_upstream import FakeUpstream
from tests.support.ledger import cost_of
from tests.support.metrics import metric_sum
from tests.support.policies import econ_route
from tests.support.servers import ServerThread

ECON = "version: 1\nroutes:" + econ_route(projected_monthly_queries=1_000_000) + """
  econ-short:
    default_arm: fine_tuned
    allow_arm_override: true
    arms:
      prompted: {target: big}
      fine_tuned: {target: small}
    economics: {upfront_usd: 0.25, maintenance_monthly_usd: 0.002, projected_monthly_queries: 5000,
                horizon_months: 6}
"""
MINIMUMS = EconomicsSettings(min_observed_s=600, min_requests=8, min_prompted_requests=2)
T0 = 1_800_000_000.0
FIXED = {"econ": 0.01 + 0.03 / 3, "econ-short": 0.002}
UPFRONT = {"econ": 0.5, "econ-short": 0.25}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def start(start_gateway: GatewayFactory, policy_dir: Path, clock: FakeClock, **overrides: Any) -> ServerThread:
    (policy_dir / "econ.yaml").write_text(ECON)
    return start_gateway(clock=clock, economics=MINIMUMS, **overrides)


def traffic(gateway: ServerThread, route: str, headers: dict[str, str] | None = None) -> list[float]:
    costs = []
    for arm in ["fine_tuned"] * 6 + ["prompted"] * 2:
        response = httpx.post(gateway.url + "/v1/chat/completions", headers={"x-gateway-arm": arm, **(headers or {})},
                              json={"model": route, "messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code == 200, response.text
        costs.append(cost_of(response))
    return costs


def breakeven(url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "HYBRID_GATEWAY_API_KEY"} | (env or {})
    return subprocess.run([sys.executable, "-m", "gateway.cli", "breakeven", "--from", url, *args],
                          capture_output=True, text=True, env=environment, timeout=60)


def view(gateway: ServerThread, **headers: str) -> dict[str, dict[str, Any]]:
    body = httpx.get(gateway.url + "/v1/economics", headers=headers).json()
    return {entry["route"]: entry for entry in body["routes"]}


@pytest.fixture
def gateway(start_gateway: GatewayFactory, policy_dir: Path, fake: FakeUpstream, clock: FakeClock) -> ServerThread:
    return start(start_gateway, policy_dir, clock)


def test_observed_economics_follow_the_traffic(gateway: ServerThread, clock: FakeClock) -> None:
    costs = traffic(gateway, "econ")
    clock.now = T0 + 3_600
    entry = view(gateway)["econ"]
    assert entry["requests"] == 8 and entry["enough_traffic"]
    assert entry["actual_cost_per_query_usd"] == pytest.approx(sum(costs) / 8)
    assert entry["prompted_only_cost_per_query_usd"] == pytest.approx(sum(costs[6:]) / 2)
    rate = 8 / (3_600 / SECONDS_PER_MONTH)
    assert entry["observed_monthly_queries"] == pytest.approx(rate, rel=1e-9)
    assert entry["volume_share_of_projection"] == pytest.approx(rate / 1_000_000, rel=1e-9)
    assert entry["fixed_monthly_usd"] == pytest.approx(FIXED["econ"])
    savings = rate * (sum(costs[6:]) / 2 - sum(costs) / 8) - FIXED["econ"]
    assert entry["savings_monthly_usd"] == pytest.approx(savings, rel=1e-9)
    assert entry["months_to_break_even"] == pytest.approx(0.5 / savings, rel=1e-9)

    run = breakeven(gateway.url, "--json")
    assert run.returncode == 0, run.stderr
    rows = {row["route"]: row for row in json.loads(run.stdout)}
    # The same function on the same evidence (the clock stands still): the same answer and the same inputs.
    assert rows["econ"]["months_to_break_even"] == pytest.approx(entry["months_to_break_even"], rel=1e-12)
    assert rows["econ"]["inputs"] == entry["inputs"] and rows["econ"]["verdict"] == entry["verdict"]
    assert rows["econ-short"]["verdict"].startswith("not enough traffic yet: 8 more requests")
    assert rows["econ-short"]["horizon_months"] == 6 and rows["econ-short"]["months_to_break_even"] is None


def test_economics_gauges_follow_the_view(gateway: ServerThread, clock: FakeClock) -> None:
    traffic(gateway, "econ")
    clock.now = T0 + 3_600
    metrics = httpx.get(gateway.url + "/metrics").text

    def gauge(quantity: str) -> float:
        return metric_sum(metrics, "gateway_economics", route="econ", quantity=quantity)

    # One scrape is one consistent view: the break-even follows from the volume and costs it exports.
    assert gauge("upfront_usd") == 0.5 and gauge("enough_traffic") == 1 and gauge("window_start") == T0
    per_query_saving = gauge("prompted_only_cost_per_query_usd") - gauge("actual_cost_per_query_usd")
    assert per_query_saving > 0
    savings = gauge("observed_monthly_queries") * per_query_saving - gauge("fixed_monthly_usd")
    assert gauge("savings_monthly_usd") == pytest.approx(savings, rel=1e-9)
    assert gauge("months_to_break_even") == pytest.approx(0.5 / savings, rel=1e-9)
    assert metric_sum(metrics, "gateway_economics", route="econ-short", quantity="enough_traffic") == 0
    assert metric_sum(metrics, "gateway_economics", route="econ-short", quantity="missing_requests") == 8


def test_breakeven_from_a_gateway_with_two_routes(gateway: ServerThread, clock: FakeClock) -> None:
    costs = {route: traffic(gateway, route) for route in ("econ", "econ-short")}
    clock.now = T0 + 3_600
    shown = view(gateway)

    table = breakeven(gateway.url)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:2] == ["route", "queries/mo"] and "net @horizon" in lines[0]
    row = {line.split()[0]: line for line in lines[1:3]}
    assert set(row) == {"econ", "econ-short"}
    assert row["econ-short"].split()[6] == "6" and row["econ"].split()[6] == "24"  # each route's own horizon
    assert any(line.startswith("econ-short: upfront $0.25") and "horizon 6 months (the route's)" in line
               for line in lines)
    assert any(line.startswith("econ: upfront $0.50") for line in lines)

    for horizon in (None, 12):
        run = breakeven(gateway.url, "--json", *(["--horizon-months", str(horizon)] if horizon else []))
        assert run.returncode == 0, run.stderr
        for result in json.loads(run.stdout):
            route = result["route"]
            expected = horizon or {"econ": 24, "econ-short": 6}[route]
            rate = 8 / (3_600 / SECONDS_PER_MONTH)
            savings = rate * (sum(costs[route][6:]) / 2 - sum(costs[route]) / 8) - FIXED[route]
            assert result["horizon_months"] == expected
            assert result["cumulative_savings_at_horizon"] == pytest.approx(savings * expected - UPFRONT[route])
            assert result["upfront"] == UPFRONT[route]
            assert result["horizon_from"] == ("--horizon-months" if horizon else "the route's policy")
            if horizon is None:
                assert result["cumulative_savings_at_horizon"] == pytest.approx(shown[route]["net_at_horizon_usd"])


def test_breakeven_from_sends_the_api_key(start_gateway: GatewayFactory, policy_dir: Path, fake: FakeUpstream,
                                          clock: FakeClock) -> None:
    gateway = start(start_gateway, policy_dir, clock, api_key_digests=frozenset({digest_key("sk-econ")}))
    traffic(gateway, "econ", headers={"authorization": "Bearer sk-econ"})
    clock.now = T0 + 3_600

    refused = breakeven(gateway.url)
    assert refused.returncode == 2 and "needs an API key: give --api-key or set $HYBRID_GATEWAY_API_KEY" in refused.stderr
    wrong = breakeven(gateway.url, "--api-key", "sk-wrong")
    assert wrong.returncode == 2 and "refused the API key" in wrong.stderr
    for run in (breakeven(gateway.url, "--json", "--api-key", "sk-econ"),
                breakeven(gateway.url, "--json", env={"HYBRID_GATEWAY_API_KEY": "sk-econ"})):
        assert run.returncode == 0, run.stderr
        assert {row["route"] for row in json.loads(run.stdout)} == {"econ", "econ-short"}
