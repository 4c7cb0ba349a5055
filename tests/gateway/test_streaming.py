"""Raw SSE from the gateway is byte-valid, accounted, and fails loudly mid-stream."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.conftest import BIG_MODEL
from tests.support.chat import chat
from tests.support.fake_upstream import Action, FakeUpstream
from tests.support.metrics import scrape
from tests.support.polling import poll
from tests.support.servers import ServerThread

_COST = re.compile(rb"^: x-gateway-cost-usd=(\d+\.\d{8})$")


def events(raw: bytes) -> list[bytes]:
    """Split an SSE body into events; every event must end with a blank line."""
    assert raw.endswith(b"\n\n")
    return [event for event in raw.split(b"\n\n") if event]


def test_sse_is_byte_valid_and_ends_with_done(gateway: ServerThread, fake: FakeUpstream) -> None:
    response = chat(gateway, "chat", stream=True)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-gateway-arm"] == "prompted"
    parts = events(response.content)
    assert parts[-1] == b"data: [DONE]"
    cost = _COST.match(parts[-2])
    assert cost is not None
    assert float(cost.group(1)) == pytest.approx((11 * 2 + 5 * 8) / 1e6)
    for part in parts[:-2]:
        assert part.startswith(b"data: ")
        chunk = json.loads(part[len(b"data: "):])
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["choices"], "the usage chunk was not asked for and must be hidden"


def test_include_usage_gives_a_usage_chunk(gateway: ServerThread, fake: FakeUpstream) -> None:
    parts = events(chat(gateway, "chat", stream=True, stream_options={"include_usage": True}).content)
    usage_chunk = json.loads(parts[-3][len(b"data: "):])
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}


def test_break_mid_stream_ends_with_an_error_event(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(BIG_MODEL, Action(break_after_chunks=2))
    parts = events(chat(gateway, "chat", stream=True).content)
    assert len(parts) == 3
    error = json.loads(parts[-1][len(b"data: "):])["error"]
    assert error["type"] == "server_error"
    assert b"[DONE]" not in b"".join(parts)


def test_stream_without_upstream_usage_is_estimated(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(BIG_MODEL, Action(usage=False, text="one two three four five six"))
    parts = events(chat(gateway, "chat", stream=True).content)
    cost = _COST.match(parts[-2])
    assert cost is not None and float(cost.group(1)) > 0
    metrics = httpx.get(gateway.url + "/metrics").text
    assert 'gateway_estimated_usage_requests_total{target="big"} 1.0' in metrics


def test_a_client_leaving_mid_stream_closes_the_upstream_call_and_counts_a_499(gateway: ServerThread,
                                                                             fake: FakeUpstream) -> None:
    fake.script_for(BIG_MODEL, Action(stall_after_chunks=2))
    before = fake.abandoned
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body, timeout=30) as response:
        assert next(response.iter_raw()).startswith(b"data: ")  # the stream is under way; then the client leaves
    poll(lambda: fake.abandoned == before + 1, "the gateway to close its upstream stream")
    poll(lambda: scrape(gateway.url, "gateway_requests_total", status="499") == 1, "the 499 to be counted")
    assert scrape(gateway.url, "gateway_requests_total", status="200") == 0
