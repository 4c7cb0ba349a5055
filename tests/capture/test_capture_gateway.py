"""Capture through the gateway: the route's requests are stored redacted, with the arm's prompt kept apart
from the client's messages, the answer (JSON or streamed) and the same usage and cost the ledger counted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from gateway.capture import CaptureStore
from tests.capture.conftest import gateway_with
from tests.conftest import BIG_MODEL
from tests.support.chat import chat
from tests.support.fake_upstream import Action, FakeUpstream
from tests.support.ledger import cost_of
from tests.support.servers import ServerThread

CAPTURED = """
  captured:
    capture:
      share: 1.0
      redact: [{name: ticket, pattern: 'TCK-\\d{4}'}]
    arms:
      prompted:
        target: big
        system_prompt: You are the Lumen Freight support desk.
        few_shot:
          - {user: "Where is my parcel?", assistant: "Let me check the tracking."}
"""
QUESTION = "I am jane@example.com, ticket TCK-1234, key sk-proj-Ab3dEf6hIj9kLm2nOp5q: how do refunds work?"


@pytest.fixture
def served(tmp_path: Path, fake_server: tuple[FakeUpstream, ServerThread], fake: FakeUpstream) -> Iterator[ServerThread]:
    with gateway_with(tmp_path, fake_server[1].url, CAPTURED) as server:
        yield server


def _flushed(server: ServerThread) -> None:
    assert server.server.config.app.state.gateway.captures.flush(30)


def test_the_routes_requests_are_captured_redacted_with_the_arms_prompt_apart(
        served: ServerThread, fake: FakeUpstream, tmp_path: Path) -> None:
    fake.script_for(BIG_MODEL, Action(text="Refunds take 5 days; write to help@lumen.example."),
                    Action(text="Refunds take 5 days."), Action(status=500))
    plain = chat(served, "captured", QUESTION, expect=200)
    streamed = chat(served, "captured", QUESTION, stream=True, expect=200)
    chat(served, "captured", "this one fails", expect=502)  # a failed request is no example
    chat(served, "chat", QUESTION, expect=200)  # a route without capture keeps nothing
    _flushed(served)
    rows = CaptureStore.open(None, tmp_path / "var").read("captured")
    assert [row.request_id for row in rows] == [plain.headers["x-gateway-request-id"],
                                                 streamed.headers["x-gateway-request-id"]]
    assert CaptureStore.open(None, tmp_path / "var").read("chat") == []
    for row, response in zip(rows, (plain, streamed), strict=True):
        client = orjson.loads(row.client_messages)
        assert client == [{"role": "user", "content": "I am [REDACTED:email], ticket [REDACTED:ticket], key "
                                                      "[REDACTED:api_key]: how do refunds work?"}]
        assert orjson.loads(row.added_messages) == [
            {"role": "system", "content": "You are the Lumen Freight support desk."},
            {"role": "user", "content": "Where is my parcel?"},
            {"role": "assistant", "content": "Let me check the tracking."}]
        assert (row.arm, row.target, row.stream) == ("prompted", "big", response is streamed)
        assert row.cost_usd == pytest.approx(cost_of(response), abs=1e-8)
    assert rows[0].answer == "Refunds take 5 days; write to [REDACTED:email]."
    assert rows[1].answer.strip() == "Refunds take 5 days."
    assert rows[0].prompt_tokens is not None and rows[0].completion_tokens is not None


def test_the_access_log_and_the_capture_agree_on_the_request_id(served: ServerThread, fake: FakeUpstream,
                                                                tmp_path: Path) -> None:
    """The capture is keyed by the server's id: a client's own x-request-id never becomes a capture key."""
    response = chat(served, "captured", "hello", headers={"x-request-id": "client-chosen-id"}, expect=200)
    _flushed(served)
    (row,) = CaptureStore.open(None, tmp_path / "var").read("captured")
    assert row.request_id == response.headers["x-gateway-request-id"] != "client-chosen-id"
    assert time.time() - row.captured_at < 300
    assert httpx.get(served.url + "/metrics").text.count('gateway_captures_total{result="stored"} 1.0') == 1


def _feedback(server: ServerThread, request_id: str, **body: object) -> httpx.Response:
    return httpx.post(server.url + "/v1/feedback", json={"request_id": request_id, **body})


def test_feedback_is_joined_to_the_capture_by_the_gateways_request_id(served: ServerThread, fake: FakeUpstream,
                                                                      tmp_path: Path) -> None:
    """Outside any experiment, the captured request's token lets its caller judge it, once unless replaced."""
    response = chat(served, "captured", "hello", expect=200)
    request_id, token = response.headers["x-gateway-request-id"], response.headers["x-gateway-feedback-token"]
    _flushed(served)
    assert _feedback(served, request_id, score=0.9).status_code == 404  # no token, no key: not the caller's
    assert _feedback(served, request_id, score=0.9, feedback_token="forged").status_code == 404
    assert _feedback(served, request_id, score=7, feedback_token=token).status_code == 400  # off the 0-1 scale
    first = _feedback(served, request_id, score=0.9, comment="good", feedback_token=token)
    assert first.status_code == 200 and first.json()["captured"] is True
    assert _feedback(served, request_id, success=False, feedback_token=token).status_code == 409
    assert _feedback(served, request_id, success=False, feedback_token=token, replace=True).status_code == 200
    judged = CaptureStore.open(None, tmp_path / "var").feedback("captured")[request_id]
    assert (judged.score, judged.success, judged.comment) == (None, False, None)
    assert chat(served, "chat", "not captured", expect=200).headers.get("x-gateway-feedback-token") is None
