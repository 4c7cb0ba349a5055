"""Every error case returns its status and OpenAI's envelope, never a stack trace or FastAPI's `detail`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import BIG_MODEL, SLOW_MODEL
from tests.support.envelope import assert_envelope
from tests.support.fake_upstream import Action, FakeUpstream
from tests.support.servers import ServerThread

MESSAGES = [{"role": "user", "content": "hi"}]


def post(gateway: ServerThread, body: Any = None, *, content: bytes | None = None,
         headers: dict[str, str] | None = None, path: str = "/v1/chat/completions") -> httpx.Response:
    return httpx.post(gateway.url + path, json=body, content=content, headers=headers, timeout=30)


def test_malformed_json_is_400(gateway: ServerThread) -> None:
    assert_envelope(post(gateway, content=b'{"model": "chat", "messages": [', headers={"content-type": "application/json"}),
                    400, "invalid_json")
    assert_envelope(post(gateway, content=b"[1, 2]", headers={"content-type": "application/json"}), 400)


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "chat"}, "messages"),
    ({"model": "chat", "messages": []}, "messages"),
    ({"model": "chat", "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ({"model": "chat", "messages": MESSAGES, "temperature": 5}, "temperature"),
    ({"model": "chat", "messages": MESSAGES, "n": 0}, "n"),
    ({"model": "chat", "messages": MESSAGES, "stream": "yes please"}, "stream"),
    ({"model": "chat", "messages": MESSAGES, "gateway": {"arm": "cheap"}}, "gateway.arm"),
    ({"messages": MESSAGES}, "model"),
])
def test_schema_errors_are_400_naming_the_parameter(gateway: ServerThread, body: dict[str, Any], param: str) -> None:
    assert_envelope(post(gateway, body), 400, "invalid_parameter", param)


def test_unknown_model_is_404(gateway: ServerThread) -> None:
    error = assert_envelope(post(gateway, {"model": "gpt-17", "messages": MESSAGES}), 404, "model_not_found", "model")
    assert "chat" in error["message"]


def test_unexposed_target_cannot_be_called_by_name(gateway: ServerThread) -> None:
    assert_envelope(post(gateway, {"model": "big", "messages": MESSAGES}), 404, "model_not_found")


@pytest.mark.parametrize("field", ["api_base", "base_url", "api_key", "azure_endpoint", "custom_llm_provider",
                                   "anthropic_api_key", "extra_headers", "API_BASE", "fallbacks",
                                   "mock_response", "extra_body"])
def test_clients_cannot_steer_upstream_connections(gateway: ServerThread, fake: FakeUpstream, field: str) -> None:
    body = {"model": "chat", "messages": MESSAGES, field: "http://evil.invalid"}
    assert_envelope(post(gateway, body), 400, "forbidden_parameter", field)
    assert fake.received == []


def test_missing_and_wrong_keys_are_401(keyed_gateway: ServerThread) -> None:
    body = {"model": "chat", "messages": MESSAGES}
    assert_envelope(post(keyed_gateway, body), 401, "invalid_api_key")
    assert_envelope(post(keyed_gateway, body, headers={"authorization": "Bearer sk-nope"}), 401, "invalid_api_key")
    assert_envelope(post(keyed_gateway, body, headers={"authorization": "Basic sk-test-1"}), 401)
    assert post(keyed_gateway, body, headers={"authorization": "Bearer sk-test-1"}).status_code == 200
    listing = httpx.get(keyed_gateway.url + "/v1/models")
    assert_envelope(listing, 401)


def test_body_over_the_limit_is_413(start_gateway: Any, fake: FakeUpstream) -> None:
    gateway = start_gateway(max_body_bytes=1000)
    big = {"model": "chat", "messages": [{"role": "user", "content": "x" * 2000}]}
    assert_envelope(post(gateway, big), 413, "request_too_large")

    def chunked() -> Any:  # no content-length: the limit must hold while reading
        yield b'{"model": "chat", "messages": [{"role": "user", "content": "'
        yield b"y" * 2000
        yield b'"}]}'

    assert_envelope(httpx.post(gateway.url + "/v1/chat/completions", content=chunked(),
                               headers={"content-type": "application/json"}), 413)
    assert fake.received == []


def test_upstream_429_passes_retry_after(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(BIG_MODEL, Action(status=429, retry_after="7"))
    response = post(gateway, {"model": "chat", "messages": MESSAGES})
    assert_envelope(response, 429, "rate_limit_exceeded")
    assert response.headers["retry-after"] == "7"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_upstream_5xx_is_502(gateway: ServerThread, fake: FakeUpstream, status: int) -> None:
    fake.script_for(BIG_MODEL, Action(status=status))
    response = post(gateway, {"model": "chat", "messages": MESSAGES})
    assert_envelope(response, 502, "upstream_error")
    assert response.headers["x-gateway-target"] == "big"


def test_upstream_400_is_passed_on_with_its_message(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(BIG_MODEL, Action(status=400))
    error = assert_envelope(post(gateway, {"model": "chat", "messages": MESSAGES}), 400, "upstream_rejected")
    assert "scripted failure 400" in error["message"]


def test_upstream_401_is_our_problem_not_the_clients(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(BIG_MODEL, Action(status=401))
    assert_envelope(post(gateway, {"model": "chat", "messages": MESSAGES}), 502, "upstream_error")


def test_upstream_timeout_is_504(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(SLOW_MODEL, Action(delay_s=1.0))
    assert_envelope(post(gateway, {"model": "slow", "messages": MESSAGES}), 504, "upstream_timeout")


def test_unreachable_upstream_is_502(gateway: ServerThread) -> None:
    assert_envelope(post(gateway, {"model": "down", "messages": MESSAGES}), 502, "upstream_connection_error")


def test_streaming_errors_before_the_first_byte_keep_their_status(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(BIG_MODEL, Action(status=503), Action(status=429, retry_after="2"))
    assert_envelope(post(gateway, {"model": "chat", "messages": MESSAGES, "stream": True}), 502)
    response = post(gateway, {"model": "chat", "messages": MESSAGES, "stream": True})
    assert_envelope(response, 429)
    assert response.headers["retry-after"] == "2"


def test_unknown_path_and_method_use_the_envelope(gateway: ServerThread) -> None:
    assert_envelope(httpx.get(gateway.url + "/v1/nothing"), 404, "not_found")
    assert_envelope(httpx.get(gateway.url + "/v1/chat/completions"), 405, "method_not_allowed")


def test_forced_arm_needs_the_route_to_allow_it(gateway: ServerThread, fake: FakeUpstream) -> None:
    body = {"model": "chat-small", "messages": MESSAGES}
    assert_envelope(post(gateway, body, headers={"x-gateway-arm": "prompted"}), 400, "arm_override_not_allowed")
    assert_envelope(post(gateway, {"model": "chat", "messages": MESSAGES}, headers={"x-gateway-arm": "huge"}), 400)
    forced = post(gateway, {"model": "chat", "messages": MESSAGES}, headers={"x-gateway-arm": "fine_tuned"})
    assert forced.headers["x-gateway-arm"] == "fine_tuned"
    assert forced.headers["x-gateway-target"] == "small"


@pytest.mark.parametrize(("path", "module"), [("/v1/chat/completions", "chat"), ("/v1/embeddings", "embeddings")])
def test_a_bug_past_the_handlers_boundary_is_500_in_the_envelope_and_logged(
        gateway: ServerThread, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        path: str, module: str) -> None:
    """The hot routes skip the framework's server-error layer; its 500 and its traceback must not go with it."""
    def broken(request: object) -> None:
        raise RuntimeError("a bug before the handler's own try")

    monkeypatch.setattr(f"gateway.api.{module}.state_of", broken)
    assert_envelope(post(gateway, {"model": "chat", "messages": MESSAGES}, path=path), 500, "internal_error")
    assert any(record.exc_info and "a bug before" in str(record.exc_info[1]) for record in caplog.records)
