"""The live break-even on a window of persisted counters: a fake clock moves through it on a real gateway.

Below the minimum observation the verdict is "not enough traffic yet" with what is missing; above it the
volume is the window's requests over the time it spans; the counters survive a restart (SQLite under the
data directory, or Redis); prompting's cost per query is what the prompted arm's own requests cost.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.economics.breakeven import NOT_ENOUGH_TRAFFIC
from gateway.economics.observed import SECONDS_PER_MONTH
from gateway.settings import EconomicsSettings
from tests.conftest import BIG_MODEL, SMALL_MODEL, GatewayFactory
from tests.support.chat import chat
from tests.support.clock import FakeClock
from tests.support.fake_upstream import Action, FakeUpstream
from tests.support.ledger import cost_of
from tests.support.metrics import metric_sum
from tests.support.polling import poll
from tests.support.process import GatewayProcess
from tests.support.servers import ServerThread

LIVE = """version: 1
routes:
  live:
    default_arm: fine_tuned
    allow_arm_override: true
    arms:
      prompted:
        target: big
        system_prompt: You are the support desk of a large company. Answer precisely, cite the policy, be polite.
        few_shot:
          - {user: "How do refunds work?", assistant: "Refunds go back to the original card within 5 days."}
          - {user: "Can I change my plan?", assistant: "Yes: Settings, Billing, Change plan."}
      fine_tuned: {target: small}
    economics: {upfront_usd: 0.5, maintenance_monthly_usd: 0.001, projected_monthly_queries: 1000}
"""
MINIMUMS = EconomicsSettings(window_s=86_400, min_observed_s=3_600, min_requests=12, min_prompted_requests=4)
T0 = 1_800_000_000.0
ARM_MODELS = {"prompted": BIG_MODEL, "fine_tuned": SMALL_MODEL}  # the models LIVE's arms call



@pytest.fixture
def start(start_gateway: GatewayFactory, policy_dir: Path, fake: FakeUpstream) -> GatewayFactory:
    """Gateways on the ``live`` route with small minimums; ``start(clock, **settings)``."""
    (policy_dir / "live.yaml").write_text(LIVE)
    return functools.partial(start_gateway, economics=MINIMUMS)


def send(gateway: ServerThread, fake: FakeUpstream, arm: str, n: int) -> list[float]:
    """``n`` requests to ``arm``; the fake reports no usage, so the gateway counts the prompt it really sent."""
    costs = []
    for index in range(n):
        fake.script_for(ARM_MODELS[arm], Action(usage=False, text=f"answer number {index} " * (index + 1)))
        costs.append(cost_of(chat(gateway, "live", f"question {index}", headers={"x-gateway-arm": arm}, expect=200)))
    return costs


def live(gateway: ServerThread) -> dict[str, Any]:
    body = httpx.get(gateway.url + "/v1/economics").json()
    [entry] = body["routes"]
    return dict(entry)


def test_not_enough_traffic_then_the_windowed_rate(start: GatewayFactory, fake: FakeUpstream) -> None:
    clock = FakeClock(T0)
    gateway = start(clock)
    empty = live(gateway)
    assert not empty["enough_traffic"] and empty["missing"]["requests"] == 12
    assert empty["verdict"].startswith(NOT_ENOUGH_TRAFFIC) and "12 more requests" in empty["verdict"]

    tuned, prompted = send(gateway, fake, "fine_tuned", 8), send(gateway, fake, "prompted", 4)
    clock.now = T0 + 1_800  # 12 requests, but only half an hour of them
    short = live(gateway)
    assert short["requests"] == 12 and short["missing"] == {"requests": 0, "seconds": 1_800, "prompted_requests": 0}
    assert short["verdict"] == f"{NOT_ENOUGH_TRAFFIC}: 30 more minutes"
    assert short["observed_monthly_queries"] is None and short["months_to_break_even"] is None
    metrics = httpx.get(gateway.url + "/metrics").text
    assert metric_sum(metrics, "gateway_economics", route="live", quantity="enough_traffic") == 0
    assert metric_sum(metrics, "gateway_economics", route="live", quantity="missing_seconds") == 1_800
    assert 'quantity="months_to_break_even"' not in metrics  # no figure the evidence cannot support

    clock.now = T0 + 7_200
    entry = live(gateway)
    assert entry["enough_traffic"] and entry["window_start"] == T0 and entry["observed_s"] == 7_200
    rate = 12 / 7_200 * SECONDS_PER_MONTH
    assert entry["observed_monthly_queries"] == pytest.approx(rate)
    actual, prompting = sum(tuned + prompted) / 12, sum(prompted) / 4
    assert entry["actual_cost_per_query_usd"] == pytest.approx(actual)
    assert entry["prompted_only_cost_per_query_usd"] == pytest.approx(prompting)
    savings = rate * (prompting - actual) - 0.001
    assert entry["savings_monthly_usd"] == pytest.approx(savings)
    assert entry["months_to_break_even"] == pytest.approx(0.5 / savings)
    assert entry["inputs"]["volume"].startswith("observed: 12 requests in 2.0 h since 2027-01-15T08:00:00+00:00")
    metrics = httpx.get(gateway.url + "/metrics").text
    assert metric_sum(metrics, "gateway_economics", route="live", quantity="enough_traffic") == 1
    assert metric_sum(metrics, "gateway_economics", route="live",
                      quantity="months_to_break_even") == pytest.approx(0.5 / savings)

    clock.now = T0 + 2 * 86_400  # the window (a day) has moved past every request
    gone = live(gateway)
    assert gone["requests"] == 0 and gone["missing"]["requests"] == 12
    assert gone["window_start"] == pytest.approx(clock.now - 86_400, abs=86_400 / 168)


def test_the_counterfactual_is_what_the_prompted_arm_cost(start: GatewayFactory, fake: FakeUpstream) -> None:
    clock = FakeClock(T0)
    gateway = start(clock)
    tuned = send(gateway, fake, "fine_tuned", 10)
    assert not live(gateway)["enough_traffic"]
    prompted = send(gateway, fake, "prompted", 3)
    entry = live(gateway)
    assert entry["prompted_only_cost_per_query_usd"] is None
    assert entry["missing"]["prompted_requests"] == 1 and "1 more prompted request" in entry["verdict"]
    prompted += send(gateway, fake, "prompted", 5)
    clock.now = T0 + 3_600
    entry = live(gateway)
    # Independently: the prompted responses' own reported costs, summed and divided.
    assert entry["prompted_only_cost_per_query_usd"] == pytest.approx(sum(prompted) / len(prompted), rel=1e-9)
    assert entry["prompted_requests"] == 8 and entry["requests"] == 18
    # Its prompt (system prompt and few-shot) makes a prompted query dearer in tokens than a fine-tuned one.
    assert entry["prompted_tokens_per_query"]["input"] > 40
    assert entry["prompted_only_cost_per_query_usd"] > sum(tuned) / len(tuned)


def test_the_window_survives_a_restart(start: GatewayFactory, fake: FakeUpstream, tmp_path: Path) -> None:
    clock = FakeClock(T0)
    first = start(clock)
    costs = send(first, fake, "fine_tuned", 8) + send(first, fake, "prompted", 4)
    first.stop()
    assert (tmp_path / "var" / "economics.sqlite3").exists()
    clock.now = T0 + 3_600
    entry = live(start(clock))
    assert entry["scope"] == "data_dir" and entry["requests"] == 12 and entry["window_start"] == T0
    assert entry["cost_usd"] == pytest.approx(sum(costs)) and entry["enough_traffic"]


def test_a_file_from_before_routed_costs_is_brought_up_to_date(start: GatewayFactory, fake: FakeUpstream,
                                                               tmp_path: Path) -> None:
    """A data directory written by a gateway without ``routed_cost_usd``: its requests were all routed."""
    clock = FakeClock(T0)
    first = start(clock)
    costs = send(first, fake, "fine_tuned", 3)
    first.stop()
    path = tmp_path / "var" / "economics.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as db, db:  # back to the old schema, the counts kept
        db.execute("ALTER TABLE buckets DROP COLUMN routed_cost_usd")
    entry = live(start(clock))
    assert entry["cost_usd"] == pytest.approx(sum(costs))
    assert entry["routing_only_cost_per_query_usd"] == pytest.approx(sum(costs) / 3)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert "routed_cost_usd" in {row[1] for row in db.execute("PRAGMA table_info(buckets)")}


def test_two_processes_on_one_data_dir_add_up(start: GatewayFactory, fake: FakeUpstream) -> None:
    clock = FakeClock(T0)
    one, two = start(clock), start(clock)
    costs = send(one, fake, "fine_tuned", 5) + send(two, fake, "prompted", 7)
    # Each flushes its own counts in the background (and before its own reads): both see all 12 once.
    for gateway in (one, two):
        entry = poll(lambda g=gateway: (e := live(g))["requests"] == 12 and e, "both processes' counts")
        assert entry["cost_usd"] == pytest.approx(sum(costs))
        assert entry["prompted_requests"] == 7


def test_the_window_survives_a_restart_in_redis(start: GatewayFactory, fake: FakeUpstream, tmp_path: Path,
                                                shared_redis: tuple[str, str]) -> None:
    url, prefix = shared_redis
    clock = FakeClock(T0)
    first = start(clock, redis_url=url, redis_prefix=prefix)
    costs = send(first, fake, "fine_tuned", 8) + send(first, fake, "prompted", 4)
    first.stop()
    clock.now = T0 + 3_600
    entry = live(start(clock, redis_url=url, redis_prefix=prefix, data_dir=tmp_path / "elsewhere"))
    assert entry["scope"] == "cluster" and entry["requests"] == 12 and entry["window_start"] == T0
    assert entry["cost_usd"] == pytest.approx(sum(costs)) and entry["enough_traffic"]


@pytest.mark.multiprocess
def test_two_uvicorn_workers_count_each_request_once_and_keep_it(policy_dir: Path, fake: FakeUpstream,
                                                                   tmp_path: Path) -> None:
    """``serve --workers 2`` on one data directory: each worker flushes its own counts to the one SQLite file."""
    (policy_dir / "live.yaml").write_text(LIVE)
    env = {"HYBRID_GATEWAY_DATA_DIR": str(tmp_path / "var"), "HYBRID_GATEWAY_ECONOMICS_MIN_REQUESTS": "1",
           "HYBRID_GATEWAY_ECONOMICS_MIN_OBSERVED_S": "1", "HYBRID_GATEWAY_ECONOMICS_MIN_PROMPTED_REQUESTS": "1"}
    args = ("--workers", "2", "--policies", str(policy_dir), "--demo", "off")
    gateway = GatewayProcess(*args, env=env).start()
    try:
        costs = send(gateway, fake, "fine_tuned", 12) + send(gateway, fake, "prompted", 8)
        # Reads land on either worker; both have flushed once every read says 20.
        poll(lambda: all(live(gateway)["requests"] == 20 for _ in range(4)), "both workers' counts")
        entry = live(gateway)
        assert entry["cost_usd"] == pytest.approx(sum(costs)) and entry["prompted_requests"] == 8
    finally:
        gateway.stop()
    restarted = GatewayProcess(*args, env=env).start()
    try:
        entry = live(restarted)
        assert entry["requests"] == 20 and entry["cost_usd"] == pytest.approx(sum(costs))
    finally:
        restarted.stop()


def test_an_unreadable_store_is_a_503_not_a_failed_request(start: GatewayFactory, fake: FakeUpstream,
                                                           tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "economics.sqlite3").write_bytes(b"not a database " * 100)
    gateway = start(FakeClock(T0))
    send(gateway, fake, "prompted", 2)  # served and billed as usual
    response = httpx.get(gateway.url + "/v1/economics")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "service_unavailable" and "economics.sqlite3" in error["message"]
    assert httpx.get(gateway.url + "/metrics").status_code == 200
    cli = subprocess.run([sys.executable, "-m", "gateway.cli", "breakeven", "--from", gateway.url],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 2 and "HTTP 503 The economics window cannot be read from" in cli.stderr
