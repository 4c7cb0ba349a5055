"""Providers outside OpenAI's wire format go through litellm: Anthropic over real loopback HTTP.

One fake Anthropic server and one gateway serve the whole module, so litellm's
~6 s import is paid once. The official ``openai`` client talks to the gateway;
the fake checks that litellm spoke Anthropic's Messages API to it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gateway.app import create_app
from gateway.errors import InvalidRequest
from gateway.protocol import FORBIDDEN_FIELDS
from gateway.settings import Settings
from gateway.upstream import litellm_client
from policies import Target
from tests.support.canary import Canary
from tests.support.fake_anthropic import AnthropicAction, FakeAnthropic
from tests.support.scripts import played_out
from tests.support.servers import ServerThread

KEY_ENV = "HYBRID_GATEWAY_TEST_ANTHROPIC_KEY"
KEY = "sk-ant-test-0123456789"
MODEL = "claude-sonnet-4-5-20250929"  # priced by litellm's bundled map at $3 / $15 per million tokens
POLICY = """
version: 1
targets:
  claude:
    provider: anthropic
    model: {model}
    api_base: {url}
    api_key_env: {key_env}
  claude-slow:
    provider: anthropic
    model: {model}
    api_base: {url}
    api_key_env: {key_env}
    timeout_s: 0.3
routes:
  assistant:
    arms:
      prompted:
        target: claude
        system_prompt: You are precise.
        few_shot:
          - {{user: "2+2?", assistant: "4"}}
  slow:
    arms: {{prompted: {{target: claude-slow}}}}
"""
# litellm builds some pydantic models lazily, inside the gateway's thread, and pydantic warns about
# litellm's ``ReadOnly`` TypedDict items; pyproject turns warnings into errors, which is meant for our code.
pytestmark = pytest.mark.filterwarnings("ignore:Item .* using the `ReadOnly` qualifier:UserWarning")
HI = [{"role": "user", "content": "hi"}]
_COST = re.compile(r"^: x-gateway-cost-usd=(\d+\.\d{8})$")


def expected_cost(action: AnthropicAction) -> float:
    return (action.input_tokens * 3 + action.output_tokens * 15) / 1e6


@pytest.fixture(scope="module")
def anthropic_server() -> Iterator[tuple[FakeAnthropic, ServerThread]]:
    fake = FakeAnthropic()
    server = ServerThread(fake.app()).start()
    yield fake, server
    server.stop()


@pytest.fixture(scope="module")
def litellm_gateway(anthropic_server: tuple[FakeAnthropic, ServerThread],
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    root = tmp_path_factory.mktemp("litellm")
    (root / "policies").mkdir()
    (root / "policies" / "policy.yaml").write_text(
        POLICY.format(model=MODEL, url=anthropic_server[1].url, key_env=KEY_ENV))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_ENV, KEY)
        server = ServerThread(create_app(Settings(policies_dir=root / "policies", data_dir=root / "var"))).start()
        yield server
        server.stop()


@pytest.fixture(scope="module")
def canary_server() -> Iterator[tuple[Canary, ServerThread]]:
    canary = Canary()
    server = ServerThread(canary.app()).start()
    yield canary, server
    server.stop()


@pytest.fixture
def canary(canary_server: tuple[Canary, ServerThread]) -> tuple[Canary, str]:
    canary_server[0].received.clear()
    return canary_server[0], canary_server[1].url


@pytest.fixture
def fake(anthropic_server: tuple[FakeAnthropic, ServerThread]) -> Iterator[FakeAnthropic]:
    with played_out(anthropic_server[0]) as upstream:
        yield upstream


@pytest.fixture
def client(litellm_gateway: ServerThread) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{litellm_gateway.url}/v1", api_key="unused", max_retries=0, timeout=30) as sdk:
        yield sdk


def sse_events(raw: bytes) -> list[str]:
    assert raw.endswith(b"\n\n"), raw[-200:]
    return [event for event in raw.decode().split("\n\n") if event]


def system_text(system: Any) -> str:
    """Anthropic's ``system`` is a string or a list of text blocks."""
    if isinstance(system, str):
        return system
    return "".join(block["text"] for block in system)


def test_completion_text_usage_and_cost(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    raw = client.chat.completions.with_raw_response.create(model="assistant", messages=HI)
    completion = raw.parse()
    action = AnthropicAction()
    assert completion.choices[0].message.content == action.text
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (21, 5)
    assert raw.headers["x-gateway-target"] == "claude"
    assert float(raw.headers["x-gateway-cost-usd"]) == pytest.approx(expected_cost(action))
    assert float(raw.headers["x-gateway-cost-usd"]) > 0


def test_request_reaches_anthropic_in_its_own_format(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    client.chat.completions.create(model="assistant", messages=HI, temperature=0.2, max_tokens=64)
    assert len(fake.received) == 1
    sent, headers = fake.received[0], fake.headers[0]
    assert headers["x-api-key"] == KEY
    assert "authorization" not in headers
    assert headers["anthropic-version"]
    assert sent["model"] == MODEL
    assert system_text(sent["system"]) == "You are precise."
    assert [(m["role"], m["content"] if isinstance(m["content"], str) else m["content"][0]["text"])
            for m in sent["messages"]] == [("user", "2+2?"), ("assistant", "4"), ("user", "hi")]
    assert sent["max_tokens"] == 64
    assert sent["temperature"] == 0.2
    assert not sent.get("stream")


def test_streaming_joins_text_and_hides_usage_not_asked_for(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    chunks = list(client.chat.completions.create(model="assistant", messages=HI, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == AnthropicAction().text
    assert all(chunk.usage is None for chunk in chunks)
    assert fake.received[0]["stream"] is True
    assert system_text(fake.received[0]["system"]) == "You are precise."


def test_streaming_usage_chunk_when_asked(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    chunks = list(client.chat.completions.create(model="assistant", messages=HI, stream=True,
                                                 stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == AnthropicAction().text
    with_usage = [chunk.usage for chunk in chunks if chunk.usage is not None]
    assert with_usage, "the client asked for usage"
    assert (with_usage[-1].prompt_tokens, with_usage[-1].completion_tokens) == (21, 5)


def test_raw_sse_ends_with_cost_and_done(litellm_gateway: ServerThread, fake: FakeAnthropic) -> None:
    response = httpx.post(litellm_gateway.url + "/v1/chat/completions", timeout=30,
                          json={"model": "assistant", "messages": HI, "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.content)
    assert events[-1] == "data: [DONE]"
    cost = _COST.match(events[-2])
    assert cost is not None, events[-2]
    assert float(cost.group(1)) == pytest.approx(expected_cost(AnthropicAction()), abs=1e-8)
    for event in events[:-2]:
        assert event.startswith("data: ")
        chunk = json.loads(event[len("data: "):])
        assert chunk["object"] == "chat.completion.chunk"


def test_rate_limit_passes_retry_after(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.script_for(MODEL, AnthropicAction(status=429, retry_after="7"))
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="assistant", messages=HI)
    assert limited.value.response.headers["retry-after"] == "7"
    assert limited.value.code == "rate_limit_exceeded"


def test_rate_limit_message_is_the_gateways_not_the_providers(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.script_for(MODEL, AnthropicAction(status=429, message="Number of request tokens has exceeded your per-minute rate "
                                                  "limit (org 5f3c-SeCrEt, 40,000 input tokens per minute)"))
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="assistant", messages=HI)
    assert "SeCrEt" not in limited.value.response.text and "40,000" not in limited.value.response.text
    assert limited.value.message.endswith(f"upstream {MODEL} is rate limited; retry later.")


def test_rate_limit_before_the_stream_keeps_its_status(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.script_for(MODEL, AnthropicAction(status=429, retry_after="2"))
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="assistant", messages=HI, stream=True)
    assert limited.value.response.headers["retry-after"] == "2"


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_500_is_502(client: openai.OpenAI, fake: FakeAnthropic, stream: bool) -> None:
    fake.script_for(MODEL, AnthropicAction(status=500))
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model="assistant", messages=HI, stream=stream)
    assert failed.value.status_code == 502
    assert failed.value.code == "upstream_error"
    assert isinstance(failed.value.body, dict)
    assert failed.value.body["message"].endswith(": scripted api_error (500)")
    assert "litellm" not in failed.value.body["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_400_is_passed_on_with_its_message(client: openai.OpenAI, fake: FakeAnthropic, stream: bool) -> None:
    fake.script_for(MODEL, AnthropicAction(status=400, message="messages: text content blocks must be non-empty"))
    with pytest.raises(openai.BadRequestError) as rejected:
        client.chat.completions.create(model="assistant", messages=HI, stream=stream)
    assert rejected.value.code == "upstream_rejected"
    assert isinstance(rejected.value.body, dict)
    assert rejected.value.body["message"] == "messages: text content blocks must be non-empty"


def test_parameter_litellm_refuses_is_400_naming_it(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    with pytest.raises(openai.BadRequestError) as rejected:
        client.chat.completions.create(model="assistant", messages=HI, logit_bias={"1": 2})
    assert isinstance(rejected.value.body, dict)
    assert "logit_bias" in rejected.value.body["message"]
    assert "\n" not in rejected.value.body["message"]
    assert fake.received == []


def test_litellm_text_without_a_provider_answer_is_not_passed_on(litellm_gateway: ServerThread) -> None:
    """A litellm failure with no provider HTTP answer behind it: no traceback or path reaches the client,
    and a 429's Retry-After still comes from the headers litellm kept."""
    module = litellm_client._litellm()
    target = Target(provider="anthropic", model=MODEL)
    leaky = 'litellm.InternalServerError: boom\nTraceback (most recent call last):\n  File "/srv/x.py", line 1'
    failed = litellm_client._translate(target, module.InternalServerError(leaky, "anthropic", MODEL))
    assert (failed.status, failed.message) == (502, f"upstream {MODEL} failed with HTTP 500")
    limited = module.RateLimitError("litellm.RateLimitError: slow down", "anthropic", MODEL,
                                    response=httpx.Response(429, headers={"retry-after": "3"}))
    translated = litellm_client._translate(target, limited)
    assert (translated.status, translated.headers) == (429, {"retry-after": "3"})


@pytest.mark.parametrize("stream", [False, True])
def test_delay_beyond_timeout_is_504(client: openai.OpenAI, fake: FakeAnthropic, stream: bool) -> None:
    fake.script_for(MODEL, AnthropicAction(delay_s=1.0))
    with pytest.raises(openai.APIStatusError) as timed_out:
        client.chat.completions.create(model="slow", messages=HI, stream=stream)
    assert timed_out.value.status_code == 504
    assert timed_out.value.code == "upstream_timeout"


def test_error_event_mid_stream_ends_with_an_error_event(litellm_gateway: ServerThread, fake: FakeAnthropic) -> None:
    fake.script_for(MODEL, AnthropicAction(error_mid_stream=True))
    response = httpx.post(litellm_gateway.url + "/v1/chat/completions", timeout=30,
                          json={"model": "assistant", "messages": HI, "stream": True})
    events = sse_events(response.content)
    assert "[DONE]" not in response.text
    error = json.loads(events[-1][len("data: "):])["error"]
    assert error["type"] == "server_error"


def test_missing_credential_is_503_and_nothing_is_sent(client: openai.OpenAI, fake: FakeAnthropic,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(openai.InternalServerError) as unavailable:
        client.chat.completions.create(model="assistant", messages=HI)
    assert unavailable.value.status_code == 503
    assert KEY_ENV in unavailable.value.message
    assert fake.received == []



def litellm_switches(url: str) -> list[tuple[str, object]]:
    """Body fields that are litellm keyword arguments, not OpenAI parameters, each pointing at ``url``."""
    return [
        ("fallbacks", [{"model": "openai/x", "api_base": f"{url}/v1"}]),
        ("mock_response", "owned"),
        ("extra_body", {"api_base": f"{url}/v1"}),
        ("context_window_fallback_dict", {MODEL: "openai/x"}),
        ("deployment_id", f"{url}/v1"),
    ]


@pytest.mark.parametrize("index", range(5))
def test_litellm_switches_in_the_body_are_refused_and_nothing_leaves(
        litellm_gateway: ServerThread, fake: FakeAnthropic, canary: tuple[Canary, str], index: int) -> None:
    """The finding: a failing primary plus ``fallbacks`` made litellm send the Anthropic key to the client's URL."""
    recorder, url = canary
    field, value = litellm_switches(url)[index]
    fake.script_for(MODEL, AnthropicAction(status=500))
    response = httpx.post(litellm_gateway.url + "/v1/chat/completions", timeout=30,
                          json={"model": "assistant", "messages": HI, field: value})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    # Switches every target refuses are forbidden; the rest fall outside litellm's allowlist.
    code = "forbidden_parameter" if field in FORBIDDEN_FIELDS else "unsupported_parameter"
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, field)
    assert recorder.received == []
    assert fake.received == [], "refused before any upstream call"
    fake.reset()  # the failure scripted for a call that must not happen stays unplayed


def test_openai_parameters_still_reach_anthropic(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    client.chat.completions.create(model="assistant", messages=HI, stop=["END"], top_p=0.5, user="u-1",
                                   metadata={"team": "a"})
    assert fake.received[0]["stop_sequences"] == ["END"]
    assert fake.received[0]["top_p"] == 0.5


def test_image_urls_are_not_fetched_by_the_gateway(litellm_gateway: ServerThread, fake: FakeAnthropic,
                                                   canary: tuple[Canary, str]) -> None:
    recorder, url = canary
    content = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": f"{url}/i.png"}}]
    response = httpx.post(litellm_gateway.url + "/v1/chat/completions", timeout=30,
                          json={"model": "assistant", "messages": [{"role": "user", "content": content}]})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "image_url_not_fetched"
    assert recorder.received == [] and fake.received == []


def test_embedding_calls_take_only_openai_fields(canary: tuple[Canary, str]) -> None:
    recorder, url = canary
    target = Target(provider="cohere", model="embed-english-v3.0", api_base=url)
    with pytest.raises(InvalidRequest) as refused:
        asyncio.run(litellm_client.LiteLLMClient().embed(target, {"model": target.model, "input": ["x"],
                                                                  "api_base": url, "mock_response": [0.1]}))
    assert refused.value.param == "api_base"
    assert recorder.received == []
