"""Cost and usage: policy prices, litellm's bundled map, local estimates, and metrics that add up."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import httpx
import pytest

from gateway.accounting.completion import Arrival, Routing, finish
from gateway.accounting.ledger import Ledger
from gateway.accounting.pricing import price_of
from gateway.accounting.usage import estimate_tokens
from gateway.metrics import Metrics
from policies import Price, Target
from tests.conftest import BIG_MODEL, SMALL_MODEL
from tests.support.fake_upstream import Action, FakeUpstream
from tests.support.ledger import cost_of
from tests.support.metrics import metric_sum
from tests.support.servers import ServerThread

MESSAGES = [{"role": "user", "content": "hi"}]


def test_policy_price_overrides_the_map() -> None:
    target = Target(provider="openai", model="gpt-4o", price=Price(input_per_million=1, output_per_million=3))
    price = price_of(target)
    assert price is not None and price.cost(1_000_000, 1_000_000) == pytest.approx(4.0)


@pytest.mark.parametrize(("model", "provider"), [("gpt-4o", "openai"),
                                                  ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "openai"),
                                                  ("text-embedding-3-small", "openai")])
def test_bundled_map_prices_known_models(model: str, provider: str) -> None:
    price = price_of(Target(provider=provider, model=model))
    assert price is not None and price.input > 0


def test_fine_tuned_ids_cost_less_than_their_large_counterpart() -> None:
    large = price_of(Target(provider="openai", model="gpt-4o"))
    tuned = price_of(Target(provider="openai", model="ft:gpt-4o-mini-2024-07-18:acme::abc123"))
    assert large is not None and tuned is not None
    assert tuned.cost(1000, 500) < large.cost(1000, 500)


def test_unknown_model_has_no_price() -> None:
    assert price_of(Target(provider="vllm", model="mystery-model")) is None


def test_estimate_tracks_text_length() -> None:
    assert estimate_tokens("") == 0
    assert 8 <= estimate_tokens("The quick brown fox jumps over the lazy dog.") <= 14


def test_upstream_without_usage_is_estimated_and_flagged(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(BIG_MODEL, Action(usage=False))
    response = httpx.post(gateway.url + "/v1/chat/completions", json={"model": "chat", "messages": MESSAGES})
    assert response.headers["x-gateway-usage"] == "estimated"
    assert float(response.headers["x-gateway-cost-usd"]) > 0


def test_unpriced_target_is_counted_not_guessed(gateway: ServerThread, fake: FakeUpstream) -> None:
    response = httpx.post(gateway.url + "/v1/chat/completions", json={"model": "unpriced", "messages": MESSAGES})
    assert response.headers["x-gateway-cost-usd"] == "unknown"
    streamed = httpx.post(gateway.url + "/v1/chat/completions",
                          json={"model": "unpriced", "messages": MESSAGES, "stream": True})
    assert b": x-gateway-cost-usd=unknown\n" in streamed.content  # not a made-up $0
    assert 'gateway_unpriced_requests_total{target="mystery"} 2.0' in httpx.get(gateway.url + "/metrics").text




def test_metrics_cost_equals_the_sum_of_headers(gateway: ServerThread, fake: FakeUpstream) -> None:
    longer = "a longer answer with more words in it"
    fake.script_for(BIG_MODEL, Action(), Action(text=longer)).script_for(SMALL_MODEL, Action(status=500))
    header_total = 0.0
    for index in range(4):
        body = {"model": "chat" if index % 2 == 0 else "chat-small", "messages": MESSAGES}
        response = httpx.post(gateway.url + "/v1/chat/completions", json=body)
        if response.status_code == 200:
            header_total += cost_of(response)
    header_total += cost_of(httpx.post(gateway.url + "/v1/chat/completions", json={**body, "stream": True}))
    metrics = httpx.get(gateway.url + "/metrics").text
    assert metric_sum(metrics, "gateway_cost_usd_total") == pytest.approx(header_total, abs=1e-9)
    assert metric_sum(metrics, "gateway_requests_total", status="200") == 4
    assert metric_sum(metrics, "gateway_requests_total", status="502") == 1
    assert metric_sum(metrics, "gateway_tokens_total", route="chat", direction="output") == 5 + len(longer.split())


def test_access_log_lines_carry_an_iso_utc_timestamp() -> None:
    stream = io.BytesIO()
    ledger = Ledger(Metrics(), stream)
    before = datetime.now(UTC)
    ledger.close(finish(Arrival("req-1", "chat"), Routing(route="chat")))
    after = datetime.now(UTC)
    line = json.loads(stream.getvalue())
    assert line["request_id"] == "req-1" and line["ts"].endswith("Z")  # ISO 8601, UTC
    assert before <= datetime.fromisoformat(line["ts"]) <= after
