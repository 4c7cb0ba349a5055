"""The official openai SDK works unchanged against the gateway: sync, async, streaming, tools, errors."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import BIG_MODEL
from tests.support.fake_upstream import Action, FakeUpstream
from tests.support.servers import ServerThread

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def client(gateway: ServerThread, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


def test_sync_completion_with_headers(gateway: ServerThread, fake: FakeUpstream) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "hello"}])
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello from the fake upstream."
    assert raw.headers["x-gateway-route"] == "chat"
    assert raw.headers["x-gateway-arm"] == "prompted"
    assert raw.headers["x-gateway-target"] == "big"
    # 11 prompt and 5 completion tokens at $2 / $8 per million.
    assert float(raw.headers["x-gateway-cost-usd"]) == pytest.approx((11 * 2 + 5 * 8) / 1e6)
    assert len(raw.headers["x-request-id"]) >= 16


def test_arm_prompt_and_parameters_reach_upstream_untouched(gateway: ServerThread, fake: FakeUpstream) -> None:
    params = {"tools": TOOLS, "tool_choice": "auto", "response_format": {"type": "json_object"}, "n": 2,
              "stop": ["\n\n"], "seed": 7, "logprobs": True, "top_logprobs": 2, "temperature": 0.3,
              "max_tokens": 50, "max_completion_tokens": 60, "user": "u-1", "metadata": {"team": "a"},
              "frequency_penalty": 0.5, "parallel_tool_calls": False}
    client(gateway).chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}],
                                            extra_body={"gateway": {"arm": "prompted"}, "custom_flag": 1},
                                            **params)
    sent = fake.received[-1]
    for key, value in {**params, "custom_flag": 1}.items():
        assert sent[key] == value, key
    assert sent["model"] == BIG_MODEL
    assert "gateway" not in sent
    assert sent["messages"] == [
        {"role": "system", "content": "You are precise."},
        {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
        {"role": "user", "content": "hi"}]


async def test_async_streaming_with_usage(gateway: ServerThread, fake: FakeUpstream) -> None:
    async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0) as aclient:
        stream = await aclient.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True,
            stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == "Hello from the fake upstream."
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_sync_streaming_hides_usage_the_client_did_not_ask_for(gateway: ServerThread, fake: FakeUpstream) -> None:
    chunks = list(client(gateway).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert all(chunk.usage is None for chunk in chunks)
    assert fake.received[-1]["stream_options"] == {"include_usage": True}


def test_tools_round_trip_through_demo_shaped_answer(gateway: ServerThread, fake: FakeUpstream) -> None:
    completion = client(gateway).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "weather?"}], tools=TOOLS, tool_choice="required")
    assert completion.choices[0].finish_reason == "stop"
    assert fake.received[-1]["tools"] == TOOLS


async def test_async_errors_are_typed(gateway: ServerThread, fake: FakeUpstream) -> None:
    async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0) as aclient:
        with pytest.raises(openai.NotFoundError) as not_found:
            await aclient.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
        assert not_found.value.code == "model_not_found"
        fake.script_for(BIG_MODEL, Action(status=429, retry_after="3"))
        with pytest.raises(openai.RateLimitError) as limited:
            await aclient.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
        assert limited.value.response.headers["retry-after"] == "3"


def test_wrong_key_is_authentication_error(keyed_gateway: ServerThread, fake: FakeUpstream) -> None:
    with pytest.raises(openai.AuthenticationError):
        client(keyed_gateway, "sk-wrong").chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}])
    ok = client(keyed_gateway, "sk-test-2").chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "x"}])
    assert ok.choices[0].message.content


def test_models_and_embeddings(gateway: ServerThread, fake: FakeUpstream) -> None:
    ids = {model.id for model in client(gateway).models.list()}
    assert ids == {"chat", "chat-small", "unpriced", "slow", "down", "embedder"}
    embedding = client(gateway).embeddings.create(model="embedder", input="hello")
    assert embedding.data[0].embedding == [0.1, 0.2]
    with pytest.raises(openai.NotFoundError):
        client(gateway).embeddings.create(model="big", input="hello")


def test_mid_stream_failure_raises_in_the_sdk(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(BIG_MODEL, Action(break_after_chunks=2))
    stream = client(gateway).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], stream=True)
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
