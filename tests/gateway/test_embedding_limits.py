"""/v1/embeddings caps what one request may ask (OpenAI's limits by default) and what of a reply it holds.

Each refusal happens before anything goes upstream, so the fake upstream's log
stays empty; the reply limit is checked against a real answer over loopback.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.limits import Limits
from tests.conftest import GatewayFactory
from tests.support.fake_upstream import FakeUpstream
from tests.support.servers import ServerThread


def embed(gateway: ServerThread, given: Any, **extra: Any) -> httpx.Response:
    return httpx.post(gateway.url + "/v1/embeddings", json={"model": "embedder", "input": given, **extra}, timeout=60)


def assert_refused(response: httpx.Response, code: str, fragment: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, "input")
    assert fragment in error["message"]


@pytest.mark.parametrize(("given", "code", "fragment"), [
    (["x"] * 2049, "too_many_inputs", "at most 2048"),
    ([[7]] * 2049, "too_many_inputs", "at most 2048"),
    ("ab " * 8193, "input_too_long", "more than 8192 tokens"),
    (["ab " * 8000] * 38, "too_many_tokens", "more than 300000 tokens"),
    ([], "invalid_parameter", "must not be empty"),
    (["fine", ""], "invalid_parameter", "must not be empty"),
])
def test_openai_limits_are_the_defaults(gateway: ServerThread, fake: FakeUpstream, given: Any, code: str,
                                        fragment: str) -> None:
    assert_refused(embed(gateway, given), code, fragment)
    assert fake.received == []


def test_the_largest_batch_openai_takes_passes(gateway: ServerThread, fake: FakeUpstream) -> None:
    response = embed(gateway, ["ab " * 100] * 2048)
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 2048


def test_limits_are_configurable(start_gateway: GatewayFactory, fake: FakeUpstream) -> None:
    gateway = start_gateway(limits=Limits(max_embedding_inputs=3, max_embedding_tokens=10,
                                          max_embedding_input_tokens=6))
    assert_refused(embed(gateway, ["a", "b", "c", "d"]), "too_many_inputs", "at most 3")
    assert_refused(embed(gateway, ["one two three four five six seven"]), "input_too_long", "more than 6")
    assert_refused(embed(gateway, ["one two three", "four five six", "seven eight nine"]), "too_many_tokens",
                   "more than 10")
    assert fake.received == []
    assert embed(gateway, ["one two", "three"]).status_code == 200


def test_a_reply_over_the_limit_is_not_held(start_gateway: GatewayFactory, fake: FakeUpstream) -> None:
    gateway = start_gateway(limits=Limits(max_upstream_reply_bytes=64 * 1024))
    assert embed(gateway, ["a", "b"], dimensions=8).status_code == 200
    response = embed(gateway, ["a", "b"], dimensions=16 * 1024)
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "upstream_error" and "HYBRID_GATEWAY_MAX_UPSTREAM_REPLY_BYTES" in error["message"]


def test_a_large_reply_is_accounted_from_its_closing_usage(gateway: ServerThread, fake: FakeUpstream) -> None:
    """Past 1 MiB only the reply's tail is parsed; the upstream's usage still prices the request."""
    response = embed(gateway, ["a"] * 512, dimensions=512)
    assert response.status_code == 200
    assert len(response.content) > 1024 * 1024
    assert len(response.json()["data"]) == 512
    assert "x-gateway-usage" not in response.headers, "the upstream's own usage was found"
    assert float(response.headers["x-gateway-cost-usd"]) == pytest.approx(3 * 0.1 / 1e6)
