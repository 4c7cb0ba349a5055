"""The direct OpenAI-compatible client: no body field steers the URL, the headers or the key it sends.

The body is forwarded as JSON (vendor extras included), so a client may put any
URL inside it; a canary server on loopback proves that none of them is ever
called and that the target's key goes only to the target's own ``api_base``.
Nor does the provider's account leak back: a 429's message is the gateway's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import GatewayFactory
from tests.support.canary import Canary
from tests.support.chat import chat
from tests.support.fake_upstream import Action, FakeUpstream
from tests.support.servers import ServerThread

KEY_ENV = "HYBRID_GATEWAY_TEST_DIRECT_KEY"
KEY = "sk-direct-test-0123456789"
KEYED_MODEL = "keyed-model"
KEYED = """
version: 1
targets:
  keyed:
    provider: vllm
    model: {model}
    api_base: {url}/v1
    api_key_env: {key_env}
    retry: {{attempts: 2, backoff_initial_ms: 0, backoff_max_ms: 0}}
routes:
  keyed:
    arms: {{prompted: {{target: keyed}}}}
"""


@pytest.fixture
def canary() -> Iterator[tuple[Canary, str]]:
    recorder = Canary()
    server = ServerThread(recorder.app()).start()
    yield recorder, server.url
    server.stop()


@pytest.fixture
def keyed_gateway(start_gateway: GatewayFactory, policy_dir: Path, fake_server: tuple[FakeUpstream, ServerThread],
                  fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> ServerThread:
    monkeypatch.setenv(KEY_ENV, KEY)
    (policy_dir / "keyed.yaml").write_text(KEYED.format(url=fake_server[1].url, key_env=KEY_ENV, model=KEYED_MODEL))
    return start_gateway()


def test_urls_inside_the_body_are_data_not_destinations(keyed_gateway: ServerThread, fake: FakeUpstream,
                                                        canary: tuple[Canary, str]) -> None:
    recorder, url = canary
    fake.script_for(KEYED_MODEL, Action(status=500))  # a retry too: the second attempt is built the same way
    body = {"model": "keyed", "messages": [{"role": "user", "content": f"see {url}/v1"}],
            "metadata": {"api_base": url}, "guided_json": {"base_url": url}}
    response = httpx.post(keyed_gateway.url + "/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Hello from the fake upstream."
    assert recorder.received == []
    assert [h["authorization"] for h in fake.headers] == [f"Bearer {KEY}"] * 2
    assert fake.received[0]["guided_json"] == body["guided_json"], "forwarded as data to the target itself"


@pytest.mark.parametrize("field", ["fallbacks", "mock_response", "extra_body"])
def test_litellm_switches_are_refused_for_direct_targets_too(keyed_gateway: ServerThread, fake: FakeUpstream,
                                                             canary: tuple[Canary, str], field: str) -> None:
    """An OpenAI-compatible target may itself be a LiteLLM proxy, which would honour these."""
    recorder, url = canary
    body = {"model": "keyed", "messages": [{"role": "user", "content": "hi"}],
            field: [{"model": "openai/x", "api_base": f"{url}/v1"}]}
    response = httpx.post(keyed_gateway.url + "/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == field
    assert recorder.received == [] and fake.received == []


@pytest.mark.parametrize("field", ["api_base", "base_url", "extra_headers", "headers", "api_key", "organization"])
def test_connection_fields_are_refused_before_any_call(keyed_gateway: ServerThread, fake: FakeUpstream,
                                                       canary: tuple[Canary, str], field: str) -> None:
    recorder, url = canary
    value = {"authorization": "Bearer x", "host": url} if "headers" in field else f"{url}/v1"
    body = {"model": "keyed", "messages": [{"role": "user", "content": "hi"}], field: value}
    response = httpx.post(keyed_gateway.url + "/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == field
    assert recorder.received == [] and fake.received == []


@pytest.mark.parametrize("stream", [False, True])
def test_a_rate_limit_answer_keeps_retry_after_not_the_providers_message(
        keyed_gateway: ServerThread, fake: FakeUpstream, stream: bool) -> None:
    fake.script_for(KEYED_MODEL, *[Action(status=429, retry_after="0" if attempt == 0 else "9",
                       error_message="Rate limit reached for gpt-4o in organization org-SeCrEt123 on tokens "
                                     "per min (TPM): Limit 30000, Used 29000.") for attempt in range(2)])
    response = chat(keyed_gateway, "keyed", stream=stream)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "9"
    error = response.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert "org-SeCrEt123" not in response.text and "30000" not in response.text
    assert error["message"] == "upstream keyed-model is rate limited; retry after the time in the retry-after header."
