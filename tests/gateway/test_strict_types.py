"""Typed parameters are checked strictly: a value of the wrong JSON type is refused, never coerced.

The body goes upstream as the client sent it, so a ``"2"`` the gateway had read
as ``n=2`` would reach the provider as a string the gateway had called valid.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.servers import ServerThread

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(("path", "extra", "param"), [
    ("/v1/chat/completions", {"stream": "yes"}, "stream"),
    ("/v1/chat/completions", {"stream": 1}, "stream"),
    ("/v1/chat/completions", {"n": "2"}, "n"),
    ("/v1/chat/completions", {"n": 2.0}, "n"),
    ("/v1/chat/completions", {"max_tokens": True}, "max_tokens"),
    ("/v1/chat/completions", {"max_completion_tokens": "64"}, "max_completion_tokens"),
    ("/v1/chat/completions", {"temperature": "0.5"}, "temperature"),
    ("/v1/chat/completions", {"stream": True, "stream_options": {"include_usage": "true"}},
     "stream_options.include_usage"),
    ("/v1/chat/completions", {"user": 7}, "user"),
    ("/v1/embeddings", {"input": [True, False]}, "input"),
    ("/v1/embeddings", {"input": "x", "dimensions": "8"}, "dimensions"),
])
def test_wrong_json_types_are_refused_not_coerced(gateway: ServerThread, fake: FakeUpstream, path: str,
                                                  extra: dict[str, Any], param: str) -> None:
    model = "embedder" if path.endswith("embeddings") else "chat"
    base: dict[str, Any] = {"model": model} if model == "embedder" else {"model": model, "messages": MESSAGES}
    response = httpx.post(gateway.url + path, json={**base, **extra}, timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"].split(".")[0]) == ("invalid_parameter", param.split(".")[0])
    assert fake.received == []


def test_right_types_still_pass_and_integers_are_numbers(gateway: ServerThread, fake: FakeUpstream) -> None:
    body = {"model": "chat", "messages": MESSAGES, "n": 2, "max_tokens": 64, "temperature": 1, "top_p": 0.5}
    assert httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=30).status_code == 200
    assert {key: fake.received[0][key] for key in ("n", "max_tokens", "temperature", "top_p")} == {
        "n": 2, "max_tokens": 64, "temperature": 1, "top_p": 0.5}
