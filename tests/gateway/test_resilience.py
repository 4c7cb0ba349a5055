"""Retries, fallbacks, breakers and deadlines against a loopback upstream that fails on command.

Every path is checked for the one promise that matters to the bill: a request
that succeeded is accounted exactly once, whatever happened on the way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import BIG_MODEL, GatewayFactory
from tests.support.chat import chat
from tests.support.fake_upstream import Action, FakeUpstream
from tests.support.ledger import cost_of
from tests.support.metrics import scrape
from tests.support.process import GatewayProcess
from tests.support.servers import ServerThread

RESILIENT = """
version: 1
targets:
  flaky:
    provider: vllm
    model: flaky-model
    api_base: {url}/v1
    price: {{input_per_million: 1.0, output_per_million: 2.0}}
    retry: {{attempts: 3, backoff_initial_ms: 0, backoff_max_ms: 0}}
  fragile:
    provider: vllm
    model: fragile-model
    api_base: {url}/v1
    breaker: {{failures: 2, window_s: 60, cooldown_s: 60}}
  limited-ft:
    provider: openai
    model: ft:limited-model
    api_base: {url}/v1
    retry: {{attempts: 3, backoff_initial_ms: 0, backoff_max_ms: 0, max_retry_after_s: 60}}
  snail:
    provider: vllm
    model: snail-model
    api_base: {url}/v1
    timeout_s: 0.3
    retry: {{attempts: 5, backoff_initial_ms: 0, backoff_max_ms: 0}}
routes:
  retrying:
    arms:
      prompted: {{target: flaky}}
  falling:
    deadline_s: 5
    default_arm: fine_tuned
    arms:
      prompted: {{target: big, system_prompt: Be thorough.}}
      fine_tuned:
        target: fragile
        fallback:
          to: [{{arm: prompted}}]
  narrow:
    arms:
      prompted:
        target: fragile
        fallback:
          to: [{{target: big}}]
          triggers: [context_window]
  pressed:
    deadline_s: 3
    default_arm: fine_tuned
    arms:
      prompted: {{target: big}}
      fine_tuned:
        target: limited-ft
        fallback:
          to: [{{arm: prompted}}]
  hurried:
    deadline_s: 0.8
    arms:
      prompted: {{target: snail}}
"""
FLAKY, FRAGILE, LIMITED_FT, SNAIL = "flaky-model", "fragile-model", "ft:limited-model", "snail-model"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def gateway(start_gateway: GatewayFactory, policy_dir: Path, fake_server: tuple[FakeUpstream, ServerThread],
            fake: FakeUpstream) -> ServerThread:
    (policy_dir / "resilient.yaml").write_text(RESILIENT.format(url=fake_server[1].url))
    return start_gateway()


def metric(server: ServerThread, name: str, **labels: str) -> float:
    return scrape(server.url, name, **labels)


def test_retries_a_5xx_and_bills_only_the_success(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(FLAKY, Action(status=500), Action(status=503))
    response = chat(gateway, "retrying")
    assert response.status_code == 200
    assert response.headers["x-gateway-attempts"] == "3"
    assert fake.models_called() == [FLAKY] * 3
    assert float(response.headers["x-gateway-cost-usd"]) == pytest.approx((11 * 1 + 5 * 2) / 1e6)
    assert metric(gateway, "gateway_requests_total") == 1
    assert metric(gateway, "gateway_cost_usd_total") == pytest.approx(float(response.headers["x-gateway-cost-usd"]))
    assert metric(gateway, "gateway_retries_total", target="flaky", reason="server_error") == 2


def test_retry_after_is_honoured_and_429_retried(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(FLAKY, Action(status=429, retry_after="0"))
    response = chat(gateway, "retrying")
    assert response.status_code == 200 and response.headers["x-gateway-attempts"] == "2"


def test_client_errors_are_not_retried(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(FLAKY, Action(status=400))
    response = chat(gateway, "retrying")
    assert response.status_code == 400
    assert fake.models_called() == [FLAKY]


def test_retries_give_up_with_the_last_error(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(FLAKY, Action(status=500), Action(status=500), Action(status=502))
    response = chat(gateway, "retrying")
    assert response.status_code == 502 and response.headers["x-gateway-attempts"] == "3"
    assert metric(gateway, "gateway_cost_usd_total") == 0


def test_fine_tuned_arm_falls_back_to_the_prompted_arm(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(FRAGILE, Action(status=500))
    response = chat(gateway, "falling")
    assert response.status_code == 200
    assert response.headers["x-gateway-fallback"] == "fragile>big:server_error"
    assert response.headers["x-gateway-arm"] == "prompted"
    assert response.headers["x-gateway-target"] == "big"
    assert fake.models_called() == [FRAGILE, BIG_MODEL]
    # The prompted arm's own set-up replaces the fine-tuned arm's.
    assert fake.received[0]["messages"] == MESSAGES
    assert fake.received[1]["messages"] == [{"role": "system", "content": "Be thorough."}, *MESSAGES]
    assert metric(gateway, "gateway_requests_total", arm="prompted", target="big") == 1
    assert metric(gateway, "gateway_fallbacks_total", from_target="fragile", to_target="big",
                  reason="server_error") == 1


def test_streams_fall_back_before_the_first_byte(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(FRAGILE, Action(status=503))
    response = chat(gateway, "falling", stream=True)
    assert response.status_code == 200
    assert response.headers["x-gateway-fallback"] == "fragile>big:server_error"
    assert response.content.endswith(b"data: [DONE]\n\n")


def test_a_stream_broken_after_its_first_byte_ends_with_an_error_not_a_fallback(gateway: ServerThread,
                                                                               fake: FakeUpstream) -> None:
    fake.script_for(FRAGILE, Action(break_after_chunks=2))
    response = chat(gateway, "falling", stream=True)
    assert b'"error"' in response.content and b"[DONE]" not in response.content
    assert fake.models_called() == [FRAGILE]
    assert "x-gateway-fallback" not in response.headers


def test_open_breaker_skips_straight_to_the_fallback(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(FRAGILE, Action(status=500), Action(status=500))
    assert chat(gateway, "falling").headers["x-gateway-fallback"] == "fragile>big:server_error"
    assert metric(gateway, "gateway_circuit_open", target="fragile") == 0  # one failure: still closed
    assert chat(gateway, "falling").headers["x-gateway-fallback"] == "fragile>big:server_error"
    assert metric(gateway, "gateway_circuit_open", target="fragile") == 1
    fake.received.clear()
    response = chat(gateway, "falling")
    assert response.headers["x-gateway-fallback"] == "fragile>big:circuit_open"
    assert fake.models_called() == [BIG_MODEL]
    assert metric(gateway, "gateway_requests_total") == 3


def test_fallback_only_on_the_listed_triggers(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(FRAGILE, Action(status=500), Action(status=400))
    assert chat(gateway, "narrow").status_code == 502
    assert chat(gateway, "narrow").status_code == 400  # a plain 400 is the client's problem: no fallback
    assert fake.models_called() == [FRAGILE, FRAGILE]


def test_context_window_refusal_moves_to_the_larger_model(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(FRAGILE, Action(status=400, error_message="This model's maximum context length is 8192 tokens."))
    response = chat(gateway, "narrow")
    assert response.status_code == 200
    assert response.headers["x-gateway-fallback"] == "fragile>big:context_window"


def test_deadline_bounds_retries(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(SNAIL, *[Action(delay_s=1.0)] * 5)
    response = chat(gateway, "hurried")
    assert response.status_code == 504
    attempts = int(response.headers["x-gateway-attempts"])
    assert 2 <= attempts < 5, "the 0.8 s deadline allows two or three 0.3 s attempts, never all five"
    fake.reset()  # the slow answers the deadline cut short are left unplayed on purpose


def test_a_retry_after_beyond_the_deadline_falls_back_at_once(gateway: ServerThread, fake: FakeUpstream) -> None:
    """Sleeping the 4 s Retry-After would outlast the 3 s deadline (and answer 504): the fallback is taken instead."""
    fake.script_for(LIMITED_FT, Action(status=429, retry_after="4"))
    response = chat(gateway, "pressed")
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-target"] == "big"
    assert response.headers["x-gateway-fallback"] == "limited-ft>big:rate_limit"
    assert response.headers["x-gateway-attempts"] == "2", "the 429, then the fallback: no retry of the fine-tune"
    assert fake.models_called() == [LIMITED_FT, BIG_MODEL]
    assert metric(gateway, "gateway_retries_skipped_total", target="limited-ft", reason="rate_limit") == 1
    assert metric(gateway, "gateway_retries_total", target="limited-ft") == 0


def send_mixed_traffic(gateway: ServerThread | GatewayProcess, fake: FakeUpstream) -> float:
    """Five requests through a retried 5xx, a retried 429, a 5xx that falls back, and streams, all succeeding.

    Returns their summed cost.
    """
    fake.script_for(FLAKY, Action(status=500), Action(), Action(status=429, retry_after="0"))
    fake.script_for(FRAGILE, Action(status=500))
    costs = 0.0
    outcomes = []
    for model, extra in [("retrying", {}), ("retrying", {}), ("falling", {}), ("falling", {"stream": True}),
                         ("retrying", {"stream": True})]:
        response = chat(gateway, model, **extra)
        outcomes.append(response.status_code)
        if response.status_code == 200:
            costs += cost_of(response)
    assert outcomes == [200] * 5
    assert fake.unmet() == {}, "every scripted failure was met"
    return costs


def test_mixed_traffic_is_accounted_once_per_success(gateway: ServerThread, fake: FakeUpstream) -> None:
    costs = send_mixed_traffic(gateway, fake)
    assert metric(gateway, "gateway_requests_total") == 5
    assert metric(gateway, "gateway_cost_usd_total") == pytest.approx(costs, abs=1e-12)


@pytest.mark.multiprocess
def test_two_workers_account_mixed_traffic_once(policy_dir: Path, fake_server: tuple[FakeUpstream, ServerThread],
                                                fake: FakeUpstream) -> None:
    """The same promise across uvicorn workers, whose metrics merge in prometheus-client's multiprocess mode."""
    (policy_dir / "resilient.yaml").write_text(RESILIENT.format(url=fake_server[1].url))
    gateway = GatewayProcess("--workers", "2", "--policies", str(policy_dir), "--demo", "off").start()
    try:
        costs = send_mixed_traffic(gateway, fake)
        assert costs > 0
        assert scrape(gateway.url, "gateway_requests_total") == 5
        assert scrape(gateway.url, "gateway_cost_usd_total") == pytest.approx(costs, abs=1e-12)
        assert scrape(gateway.url, "gateway_retries_total") == 2  # the 5xx and the 429 on the retrying target
        assert scrape(gateway.url, "gateway_fallbacks_total") == 1  # the 5xx on the falling route's fine-tune
    finally:
        gateway.stop()
