"""GET /dashboard in headless Chromium: the page's totals match /metrics, and a screenshot is kept.

Chromium is driven over the DevTools protocol (``websockets``' sync client, which
uvicorn[standard] already installs): navigate, poll the page's state with
``Runtime.evaluate`` until its first refresh has landed, read the numbers,
capture a full-page PNG to ``test-artifacts/dashboard.png``. Without Chromium
the browser test skips, except under ``CI=true``, where it fails. The browser
plumbing is shared in ``tests/support/browser.py``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.economics.observed import SECONDS_PER_MONTH
from gateway.settings import EconomicsSettings, digest_key
from tests.conftest import SMALL_MODEL, GatewayFactory
from tests.support.browser import DevTools, chromium
from tests.support.chat import chat
from tests.support.clock import FakeClock
from tests.support.fake_upstream import Action, FakeUpstream
from tests.support.metrics import metric_sum
from tests.support.policies import econ_route
from tests.support.polling import poll
from tests.support.servers import ServerThread

POLICIES = """version: 1
targets:
  small-2025:  # trained in January 2025: past econ-idle's three-month cadence
    provider: openai
    model: ft:gpt-4o-mini-2024-07-18:acme::abc123
    api_base: FAKE_URL/v1
    trained_at: 2025-01-01
routes:""" + econ_route(projected_monthly_queries=20_000_000) + """
  econ-idle:
    arms:
      prompted: {target: big}
      fine_tuned: {target: small-2025}
    economics: {upfront_usd: 100, projected_monthly_queries: 1000, retraining_every_months: 3,
                quality_baseline: 0.8}
  ab:
    allow_arm_override: true
    arms:
      prompted: {target: big}
      fine_tuned:
        target: small
        fallback: {to: [{arm: prompted}]}
  cascading:
    default_arm: fine_tuned
    strategy: cascade
    acceptors: {reject: ["not sure"]}
    arms:
      prompted: {target: big}
      fine_tuned: {target: small}
  caching:
    cache: {}
    arms: {prompted: {target: big}}
  ensembling:
    strategy: ensemble
    ensemble: {selector: vote}
    arms:
      prompted: {target: big}
      fine_tuned: {target: small}
  routed:
    classifier: {model: fast, threshold: 0.5}
    arms:
      prompted: {target: big}
      fine_tuned: {target: small}
experiments:
  ft-rollout:
    route: ab
    key: user
    variants:
      control: {weight: 50, arm: prompted}
      treatment: {weight: 50, arm: fine_tuned}
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    with chromium(tmp_path) as tools:
        yield tools


MINIMUMS = EconomicsSettings(min_observed_s=600, min_requests=8, min_prompted_requests=2)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gateway(start_gateway: GatewayFactory, policy_dir: Path, fake: FakeUpstream, clock: FakeClock,
            fake_server: tuple[FakeUpstream, ServerThread]) -> ServerThread:
    (policy_dir / "dashboard.yaml").write_text(POLICIES.replace("FAKE_URL", fake_server[1].url))
    return start_gateway(clock=clock, economics=MINIMUMS)


def send_traffic(server: ServerThread, fake: FakeUpstream) -> None:
    for arm in ["fine_tuned"] * 6 + ["prompted"] * 2:
        assert chat(server, "econ", headers={"x-gateway-arm": arm}).status_code == 200
    treated = []
    for index in range(10):
        response = chat(server, "ab", user=f"user-{index}")
        assert response.status_code == 200
        if response.headers["x-gateway-variant"] == "treatment":
            treated.append(f"user-{index}")
        judgement = {"score": 0.25 + 0.5 * (len(treated) % 2)} if treated and treated[-1] == f"user-{index}" else {
            "success": True}
        assert httpx.post(server.url + "/v1/feedback", json={
            "request_id": response.headers["x-gateway-request-id"], **judgement,
            "feedback_token": response.headers["x-gateway-feedback-token"]}).status_code == 200
    fake.script_for(SMALL_MODEL, *[Action(status=500)] * 2)
    for user in treated[:2]:  # the fine-tuned arm fails once and falls back to the prompted one
        assert chat(server, "ab", user=user).headers["x-gateway-fallback"] == "small>big:server_error"
    for _ in range(3):
        chat(server, "chat", "Explain, step by step, why the sky is blue.")
    for prompt in ["hi", "Prove that the square root of 2 is irrational, step by step, then generalise it."]:
        assert chat(server, "routed", prompt, stream=True).status_code == 200
    fake.script_for(SMALL_MODEL, Action(text="I'm not sure."), Action(text="Refunds take five days."))
    assert chat(server, "cascading").headers["x-gateway-cascade"] == "escalated"
    assert chat(server, "cascading").headers["x-gateway-cascade"] == "accepted"
    assert chat(server, "ensembling").headers["x-gateway-ensemble"] == "prompted"  # the fake's arms agree
    assert [chat(server, "caching", temperature=0).headers["x-gateway-cache"] for _ in range(3)] == [
        "miss", "hit", "hit"]
    # A forced arm bypasses the experiment (variant "none"); then two requests refused before any route is known.
    assert chat(server, "ab", user="user-0", headers={"x-gateway-arm": "prompted"}).status_code == 200
    assert chat(server, "no-such-route").status_code == 404
    assert httpx.post(server.url + "/v1/chat/completions", content=b"{not json", timeout=30,
                      headers={"content-type": "application/json"}).status_code == 400


READ = """JSON.stringify({
  state: document.body.dataset.state, refreshes: Number(document.body.dataset.refreshes),
  requests: document.getElementById('total-requests').textContent,
  requestsValue: Number(document.getElementById('total-requests').dataset.value),
  cost: document.getElementById('total-cost').textContent,
  costValue: Number(document.getElementById('total-cost').dataset.value),
  updated: document.getElementById('last-updated').textContent,
  routes: [...document.querySelectorAll('section.route')].map(s => s.dataset.route),
  econRequests: document.getElementById('requests-econ')?.dataset.value,
  verdict: document.querySelector('[data-route="econ"] .verdict')?.textContent,
  idle: document.querySelector('[data-route="econ-idle"] .verdict')?.textContent,
  idleClass: document.querySelector('[data-route="econ-idle"] .verdict')?.className,
  idleCharts: document.querySelectorAll('[data-route="econ-idle"] svg').length,
  window: document.querySelector('[data-route="econ"] .window')?.textContent,
  charts: document.querySelectorAll('[data-route="econ"] svg circle').length,
  crossing: document.querySelector('[data-route="econ"] .kv div:last-child b')?.textContent,
  classifier: document.querySelector('[data-route="routed"] .bar.prompted + .muted')?.textContent,
  calibration: document.querySelector('[data-route="routed"] .calibration')?.textContent,
  cascade: document.querySelector('[data-route="cascading"] .cascade')?.textContent,
  rejections: [...document.querySelectorAll('[data-route="cascading"] .rejections tr')].slice(1)
    .map(r => [...r.children].map(c => c.textContent)),
  ensemble: [...document.querySelectorAll('[data-route="ensembling"] .ensemble tr')].slice(1)
    .map(r => [...r.children].map(c => c.textContent)),
  cache: document.querySelector('[data-route="caching"] .cache')?.textContent,
  perQuery: [...document.querySelectorAll('[data-route="econ"] .per-query div')]
    .map(d => [d.children[0].textContent, d.children[1].textContent]),
  ttft: [...document.querySelectorAll('[data-route="routed"] table tr')].slice(1).map(r => r.lastChild.textContent),
  quality: [...document.querySelectorAll('[data-route="ab"] .quality tr')].slice(1)
    .map(r => [...r.children].map(c => c.textContent)),
  retraining: document.querySelector('[data-route="econ-idle"] .retraining')?.textContent,
  variants: document.querySelector('[data-route="ab"]')?.textContent.includes('treatment'),
  shares: [...document.querySelectorAll('[data-route="ab"] .variants tr')].slice(1).map(r => r.children[2].textContent),
  rejected: document.getElementById('rejected')?.textContent,
  latencyHeads: [...document.querySelectorAll('[data-route="econ"] table th')].map(th => th.textContent),
  footer: document.querySelector('footer').textContent,
  height: document.documentElement.scrollHeight})"""


def first_refresh(browser: DevTools) -> dict[str, Any]:
    found: dict[str, Any] = poll(lambda: (page := json.loads(browser.evaluate(
        "document.body && document.getElementById('total-requests') ? " + READ + " : 'null'") or "null"))
        and page["refreshes"] >= 1 and page, "the dashboard's first refresh", timeout_s=30)
    return found


@pytest.mark.browser
def test_dashboard_shows_the_metrics(gateway: ServerThread, fake: FakeUpstream, browser: DevTools,
                                     clock: FakeClock) -> None:
    started = datetime.now(UTC)
    send_traffic(gateway, fake)
    clock.now += 3_600  # econ's 8 requests now span an hour: past the minimum observation
    metrics = httpx.get(gateway.url + "/metrics").text
    requests = metric_sum(metrics, "gateway_requests_total")
    cost = metric_sum(metrics, "gateway_cost_usd_total")
    assert requests > 0 and cost > 0

    browser.send("Page.navigate", url=gateway.url + "/dashboard")
    shown = first_refresh(browser)

    assert shown["state"] == "ready" and shown["updated"] != "—"
    assert shown["requestsValue"] == requests
    assert float(shown["requests"].replace(",", "")) == requests
    assert shown["costValue"] == pytest.approx(cost, rel=1e-9)
    assert float(shown["cost"].lstrip("$")) == pytest.approx(cost, rel=1e-3)  # 4 significant digits
    assert shown["routes"][0] == "econ" and {"ab", "chat"} <= set(shown["routes"])
    assert float(shown["econRequests"]) == metric_sum(metrics, "gateway_requests_total", route="econ")
    assert shown["verdict"] and shown["charts"] == 1 and shown["variants"]
    # Requests refused before a route was known are not a route called "unknown" but a line of their own.
    rejected = metric_sum(metrics, "gateway_requests_total", route="unknown")
    assert rejected == 2 and "unknown" not in shown["routes"]
    assert shown["rejected"] == "2 requests rejected before a route was known (400: 1, 404: 1)"
    # Variant shares come from the variants' own counts, so they add up to 100% (the forced arm has none).
    assert len(shown["shares"]) == 2 and sum(float(share.rstrip("%")) for share in shown["shares"]) == 100
    # Percentiles are interpolated inside histogram buckets: the page says they are estimates.
    assert {"p50 ≈", "p95 ≈", "TTFT p50 ≈"} <= set(shown["latencyHeads"]) and "estimated from" in shown["footer"]
    assert shown["window"].startswith("window 7.0 d, evidence from ") and "8 requests (2 prompted) in 60 min" in shown["window"]
    # A route without traffic has no verdict to give yet: it says so, neutrally, and draws no break-even.
    assert shown["idle"] == ("not enough traffic yet: 8 more requests, "
                             "2 more prompted requests to know what prompting costs per query")
    assert shown["idleClass"] == "verdict wait" and shown["idleCharts"] == 0
    [econ] = [e for e in httpx.get(gateway.url + "/v1/economics").json()["routes"] if e["route"] == "econ"]
    ahead = timedelta(days=econ["months_to_break_even"] * SECONDS_PER_MONTH / 86_400)
    assert shown["crossing"] in {(day + ahead).date().isoformat() for day in (started, datetime.now(UTC))}
    decisions = metric_sum(metrics, "gateway_classifier_decisions_total", route="routed")
    prompted = metric_sum(metrics, "gateway_classifier_decisions_total", route="routed", arm="prompted")
    assert decisions == 2
    assert shown["classifier"] == f"{prompted / decisions:.0%} of 2 decisions sent to the prompted arm"
    assert shown["calibration"] == f"fixed threshold 0.5000 · {prompted / decisions:.0%} prompted in the calibration window"
    assert shown["cascade"] == "50% of 2 requests escalated to the prompted arm"
    assert shown["rejections"] == [["reject", "1"]]
    assert shown["ensemble"] == [["prompted", "1", "100%"]]
    saved = metric_sum(metrics, "gateway_cache_saved_usd_total", route="caching")
    prefix = "67% of 3 lookups answered from the cache, $"
    assert saved > 0 and shown["cache"].startswith(prefix) and shown["cache"].endswith(" not spent")
    assert float(shown["cache"][len(prefix):-len(" not spent")]) == pytest.approx(saved, rel=1e-3)
    # A route without a strategy costs what routing alone costs; prompting alone is the counterfactual.
    labels = [label for label, _ in shown["perQuery"]]
    assert labels == ["per query, as served", "routing alone", "prompting alone"]
    assert shown["perQuery"][0][1] == shown["perQuery"][1][1] != shown["perQuery"][2][1]
    assert shown["ttft"] and all(cell.endswith("ms") for cell in shown["ttft"])  # streamed: a TTFT per arm
    # Feedback per arm: the treatment's scores alternate 0.75 and 0.25, the control's are all successes.
    scored = metric_sum(metrics, "gateway_feedback_score_count", route="ab", arm="fine_tuned")
    mean = metric_sum(metrics, "gateway_feedback_score_sum", route="ab", arm="fine_tuned") / scored
    control = metric_sum(metrics, "gateway_feedback_success_total", route="ab", arm="prompted")
    assert shown["quality"] == [["fine_tuned", f"{scored:.0f}", f"{mean:.3f}", "—"],
                                ["prompted", "0", "—", "100%"]] and control > 0
    age = (datetime.now(UTC) - datetime(2025, 1, 1, tzinfo=UTC)).total_seconds() / SECONDS_PER_MONTH
    assert shown["retraining"].startswith("fine-tuned baseline 0.800 (alert below 0.750) · model ")
    assert f"model {age:.0f} months old of a 3.0-month cadence · retraining due" in shown["retraining"]
    assert browser.exceptions == []

    png = browser.screenshot("dashboard.png", int(shown["height"]))
    assert png.startswith(b"\x89PNG")


def test_dashboard_assets(gateway: ServerThread) -> None:
    page = httpx.get(gateway.url + "/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="total-requests"' in page.text and 'id="total-cost"' in page.text
    for name, kind in [("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")]:
        response = httpx.get(f"{gateway.url}/dashboard/{name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind)
        assert f"dashboard/{name}" in page.text
    for missing in ["index.html", "nope.js", "..%2Fapp.py", "__init__.py"]:
        assert httpx.get(f"{gateway.url}/dashboard/{missing}").status_code == 404


@pytest.mark.browser
def test_the_verdict_shows_behind_api_keys(start_gateway: GatewayFactory, policy_dir: Path, fake: FakeUpstream,
                                           browser: DevTools, clock: FakeClock,
                                           fake_server: tuple[FakeUpstream, ServerThread]) -> None:
    """With client keys on, the browser presents the key (HTTP Basic password) and /v1/economics takes it."""
    (policy_dir / "dashboard.yaml").write_text(POLICIES.replace("FAKE_URL", fake_server[1].url))
    gateway = start_gateway(clock=clock, economics=MINIMUMS, api_key_digests=frozenset({digest_key("sk-dash")}))
    for arm in ["fine_tuned"] * 6 + ["prompted"] * 2:
        assert chat(gateway, "econ", headers={"x-gateway-arm": arm, "authorization": "Bearer sk-dash"}).status_code == 200
    clock.now += 3_600
    [econ] = [e for e in httpx.get(gateway.url + "/v1/economics", headers={"authorization": "Bearer sk-dash"})
              .json()["routes"] if e["route"] == "econ"]
    credentials = base64.b64encode(b"operator:sk-dash").decode()
    browser.send("Network.enable")
    browser.send("Network.setExtraHTTPHeaders", headers={"authorization": f"Basic {credentials}"})
    browser.send("Page.navigate", url=gateway.url + "/dashboard")
    shown = first_refresh(browser)
    assert shown["verdict"] == econ["verdict"] and not shown["verdict"].startswith("not enough")
    assert shown["idle"].startswith("not enough traffic yet")
    assert browser.exceptions == []
