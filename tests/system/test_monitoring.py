"""The shipped Prometheus rules and Grafana dashboard against a real Prometheus scraping a real gateway.

Every rule expression and every dashboard target must parse in Prometheus, and,
since the traffic below exercises every metric they use (fallbacks, the
classifier, an A/B experiment with a shadow, streaming, an unpriced target, a
knowledge route whose store is down, a Redis that is down, a policy reload),
must return data once Prometheus has scraped and evaluated.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.settings import EconomicsSettings
from tests.conftest import SMALL_MODEL, GatewayFactory
from tests.support.chat import chat
from tests.support.fake_upstream import Action, FakeUpstream
from tests.support.metrics import scrape
from tests.support.polling import poll
from tests.support.process import end_process, free_port
from tests.support.required import unavailable
from tests.support.servers import ServerThread

FILES = Path(__file__).resolve().parents[2] / "helm" / "hybrid-gateway" / "files"
RULES = FILES / "prometheus-rules.yaml"
DASHBOARD = FILES / "grafana-dashboard.json"

MONITORED = """
version: 1
targets:
  small-2020:  # a fine-tune trained long ago: its route's retraining is due
    provider: openai
    model: ft:gpt-4o-mini-2024-07-18:acme::abc123
    api_base: FAKE_URL/v1
    trained_at: 2020-01-01T00:00:00Z
routes:
  mon:
    allow_arm_override: true
    arms:
      prompted: {target: big}
      fine_tuned:
        target: small
        fallback: {to: [{arm: prompted}]}
    classifier: {strong_share: 0.3}
    economics: {upfront_usd: 100, projected_monthly_queries: 1000000000000, horizon_months: 24}
  mon-prompted:
    arms:
      prompted: {target: big}
    economics: {upfront_usd: 100, maintenance_monthly_usd: 10, projected_monthly_queries: 1000000}
    capture: {share: 1.0}  # into a database that refuses connections: captures lost, and said so
  mon-cascade:
    default_arm: fine_tuned
    strategy: cascade
    acceptors: {reject: ["not sure"]}
    arms:
      prompted: {target: big}
      fine_tuned: {target: small}
  mon-cache:
    cache: {}
    arms: {prompted: {target: big}}
  mon-ensemble:
    strategy: ensemble
    ensemble: {selector: first_accepted}
    arms:
      prompted: {target: big}
      fine_tuned: {target: small}
  mon-kb:
    arms:
      prompted:
        target: big
        knowledge: {collection: facts, top_k: 2, min_score: 0.3}
  mon-ab:
    arms:
      prompted: {target: big}
      fine_tuned: {target: small-2020}
    shadow: {target: big, share: 1.0}
    economics: {upfront_usd: 100, projected_monthly_queries: 1000000, retraining_every_months: 3,
                quality_baseline: 0.9}
experiments:
  mon-rollout:
    route: mon-ab
    key: user
    variants:
      control: {weight: 50, arm: prompted}
      treatment: {weight: 50, arm: fine_tuned}
"""
PROMPTS = ["hi", "What is 2+2?", "Prove that there are infinitely many primes, then derive the prime number "
           "theorem's error term and compare three proofs in detail.", "Translate 'cat' to French.",
           "Design a distributed consensus protocol tolerant to byzantine faults and analyse its complexity.",
           "Thanks!"]
BASE_METRICS = ["gateway_requests_total", "gateway_cost_usd_total",
                "gateway_request_duration_seconds_bucket", "gateway_time_to_first_token_seconds_bucket",
                "gateway_fallbacks_total", "gateway_classifier_decisions_total", "gateway_rag_requests_total",
                "gateway_unpriced_requests_total", "gateway_shadow_requests_total", "gateway_shadow_cost_usd_total",
                "gateway_shadow_duration_seconds_bucket", "gateway_policy_reloads_total", "gateway_redis_up",
                "gateway_redis_transitions_total", "gateway_economics", "gateway_cascade_total",
                "gateway_ensemble_total", "gateway_cache_lookups_total", "gateway_cache_saved_usd_total"]


def binary(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/bin/{name}",) if os.access(p, os.X_OK)), None)


def require_prometheus() -> str:
    found = binary("prometheus")
    if found is None:
        unavailable("prometheus is not installed", "apt-get install prometheus")
    return found


@pytest.fixture
def prometheus(tmp_path: Path, start_gateway: GatewayFactory, policy_dir: Path, fake: FakeUpstream,
               fake_server: tuple[FakeUpstream, ServerThread]) -> Iterator[tuple[str, ServerThread]]:
    exe = require_prometheus()
    (policy_dir / "monitored.yaml").write_text(MONITORED.replace("FAKE_URL", fake_server[1].url))
    # Port 9 refuses connections: the start-up probe records Redis going down. Chroma and PostgreSQL likewise.
    # Minimums of one request and one second: the economics alerts have a verdict to alert on.
    gateway = start_gateway(redis_url="redis://127.0.0.1:9/0", chroma_url="http://127.0.0.1:9",
                            database_url="postgresql://hg@127.0.0.1:9/captures",
                            economics=EconomicsSettings(min_observed_s=1, min_requests=1, min_prompted_requests=1))
    port = free_port()
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "rule_files": [str(RULES)],
              "scrape_configs": [{"job_name": "hybrid-gateway", "metrics_path": "/metrics",
                                  "static_configs": [{"targets": [gateway.url.split("://", 1)[1]]}]}]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen([exe, f"--config.file={tmp_path / 'prometheus.yml'}",
                                f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
        try:
            return httpx.get(url + "/-/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        poll(ready, "prometheus to start", timeout_s=20, every_s=0.2)
        yield url, gateway
    finally:
        end_process(process)
        log.close()


def query(url: str, expr: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(url + "/api/v1/query", params={"query": expr}, timeout=10).json()
    return body


def rule_expressions() -> dict[str, str]:
    rules = yaml.safe_load(RULES.read_text())
    return {f"rule {r.get('record') or r.get('alert')}": r["expr"] for g in rules["groups"] for r in g["rules"]}


def dashboard_expressions() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$route", ".*").replace("$__range", "1h")
            assert "$" not in expr, f"unhandled variable in {panel['title']}: {expr}"
            found[f"panel {panel['title']!r} {target['refId']}"] = expr
    return found


def drive(gateway: ServerThread, fake: FakeUpstream, round_: int) -> None:
    """One round of traffic touching every metric the rules and the dashboard read."""
    send = functools.partial(chat, gateway, expect=200)
    fake.script_for(SMALL_MODEL, *[Action(status=500)] * 2)
    for _ in range(2):  # fine-tuned arm fails: falls back to the prompted arm
        response = send("mon", headers={"x-gateway-arm": "fine_tuned"})
        assert response.headers["x-gateway-fallback"] == "small>big:server_error"
    for prompt in PROMPTS * 2:  # the classifier picks the arm
        send("mon", prompt)
    for arm in ("fine_tuned", "prompted"):
        send("mon", headers={"x-gateway-arm": arm})
    send("mon", stream=True, stream_options={"include_usage": True})  # time to first token
    fake.script_for(SMALL_MODEL, Action(text="I'm not sure."))
    assert send("mon-cascade").headers["x-gateway-cascade"] == "escalated"
    assert send("mon-cascade").headers["x-gateway-cascade"] == "accepted"
    assert send("mon-ensemble").headers["x-gateway-ensemble"] in ("prompted", "fine_tuned")
    assert [send("mon-cache", f"cached {round_}", temperature=0).headers["x-gateway-cache"] for _ in range(2)] == [
        "miss", "hit"]
    send("mon-prompted")
    send("unpriced")
    assert send("mon-kb").headers["x-gateway-rag"] == "unavailable"
    for user in range(8):  # both variants, each request mirrored to the shadow target
        answer = send("mon-ab", user=f"user-{round_}-{user}")
        if answer.headers["x-gateway-arm"] == "fine_tuned":  # judged well under the route's quality_baseline
            judged = httpx.post(gateway.url + "/v1/feedback", json={
                "request_id": answer.headers["x-gateway-request-id"], "score": 0.2,
                "feedback_token": answer.headers["x-gateway-feedback-token"]})
            assert judged.status_code == 200, judged.text


@pytest.mark.prometheus
def test_rules_and_dashboard_parse_and_return_data(prometheus: tuple[str, ServerThread], fake: FakeUpstream,
                                                    policy_dir: Path) -> None:
    started = time.monotonic()
    url, gateway = prometheus
    promtool = binary("promtool")
    if promtool is not None:
        check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr

    dashboard = json.loads(DASHBOARD.read_text())
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource" and variables["route"]["type"] == "query"
    assert all(p["datasource"]["uid"] == "${DS_PROMETHEUS}" for p in dashboard["panels"] if p["type"] != "row")
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])

    drive(gateway, fake, 1)
    (policy_dir / "extra.yaml").write_text("version: 1\nroutes:\n  extra:\n    arms: {prompted: {target: big}}\n")
    poll(lambda: scrape(gateway.url, "gateway_policy_reloads_total", result="success") >= 1, "the policy reload",
         timeout_s=10, every_s=0.2)
    poll(lambda: scrape(gateway.url, "gateway_shadow_requests_total") >= 8, "the shadow calls",
         timeout_s=10, every_s=0.2)
    # Round two only once Prometheus holds round one: every counter then moves between two samples.
    served = scrape(gateway.url, "gateway_requests_total")

    def scraped() -> bool:
        totals = query(url, "sum(gateway_requests_total)")["data"]["result"]
        return bool(totals) and float(totals[0]["value"][1]) >= served and all(
            query(url, f"count({name})")["data"]["result"] for name in BASE_METRICS)

    poll(scraped, "prometheus to scrape the first round", timeout_s=15, every_s=0.2)
    drive(gateway, fake, 2)
    poll(lambda: scrape(gateway.url, "gateway_shadow_requests_total") >= 16, "the shadow calls",
         timeout_s=10, every_s=0.2)

    expressions = {**rule_expressions(), **dashboard_expressions()}
    assert len(expressions) > 40
    for name, expr in expressions.items():
        answer = query(url, expr)
        assert answer["status"] == "success", f"{name} does not parse: {answer.get('error')}\n{expr}"

    empty: list[str] = []

    def all_return_data() -> bool:
        empty[:] = [name for name, expr in expressions.items() if not query(url, expr)["data"]["result"]]
        return not empty

    try:
        poll(all_return_data, "every expression to return data",
             timeout_s=max(5.0, 55 - (time.monotonic() - started)), every_s=0.2)
    except AssertionError:
        raise AssertionError("no data for: " + ", ".join(empty)) from None
