"""The demo upstream behaves like a provider under bad input and departing clients.

It answers OpenAI's 400 (naming the parameter) to malformed ``tools``,
``response_format``, ``n`` and friends instead of crashing, does not make ``n``
multiply its latency, and stops "generating" when its client disconnects.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.demo_upstream.server import DemoUpstream
from gateway.settings import Settings
from tests.support.polling import poll
from tests.support.servers import ServerThread

MESSAGES = [{"role": "user", "content": "hi"}]
SLOW_SCALE = 1000.0  # an answer takes minutes: only a departing client can end it early


@pytest.fixture
def slow_demo() -> Iterator[tuple[DemoUpstream, ServerThread]]:
    demo = DemoUpstream(SLOW_SCALE)
    server = ServerThread(demo.app()).start()
    yield demo, server
    server.stop()


@pytest.fixture(scope="module")
def demo_url() -> Iterator[str]:
    server = ServerThread(DemoUpstream(0).app()).start()
    yield server.url
    server.stop()


@pytest.mark.parametrize(("extra", "param"), [
    ({"tools": "calculator"}, "tools"),
    ({"tools": [{"type": "function"}]}, "tools[0]"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"properties": {"x": 1}}}}]},
     "tools[0].function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"function": "f"}}, "tool_choice"),
    ({"response_format": "json"}, "response_format"),
    ({"response_format": {"type": "yaml"}}, "response_format"),
    ({"n": 129}, "n"),
    ({"n": "2"}, "n"),
    ({"messages": ["hi"]}, "messages[0]"),
    ({"messages": []}, "messages"),
])
def test_malformed_requests_are_400_not_500(demo_url: str, extra: dict[str, Any], param: str) -> None:
    response = httpx.post(demo_url + "/v1/chat/completions", timeout=30,
                          json={"model": "demo-large", "messages": MESSAGES, **extra})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)


@pytest.mark.parametrize("given", [None, "", [], [{"text": "x"}]])
def test_malformed_embedding_input_is_400(demo_url: str, given: Any) -> None:
    response = httpx.post(demo_url + "/v1/embeddings", json={"model": "demo-embed", "input": given}, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "input"


def test_well_formed_tools_and_json_mode_still_answer(demo_url: str) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"order": {"type": "integer"}}}}}]
    called = httpx.post(demo_url + "/v1/chat/completions", timeout=30,
                        json={"model": "demo-large", "messages": MESSAGES, "tools": tools, "n": 128}).json()
    assert len(called["choices"]) == 128
    assert called["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == '{"order":1}'
    json_mode = httpx.post(demo_url + "/v1/chat/completions", timeout=30, json={
        "model": "demo-large", "messages": MESSAGES, "response_format": {"type": "json_object"}}).json()
    assert json_mode["choices"][0]["message"]["content"].startswith('{"answer":')


def test_generation_stops_when_the_client_leaves(slow_demo: tuple[DemoUpstream, ServerThread]) -> None:
    demo, server = slow_demo
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/v1/chat/completions", json={"model": "demo-large", "messages": MESSAGES, "n": 128},
                   timeout=httpx.Timeout(30, read=0.5))
    poll(lambda: demo.working == 0, "the demo upstream to stop the answer its client left")


def test_readiness_follows_the_demo_upstream(tmp_path: Path) -> None:
    demo = ServerThread(DemoUpstream(0).app()).start()
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "demo.yaml").write_text(f"""version: 1
targets:
  large: {{provider: demo, model: demo-large, api_base: {demo.url}/v1}}
routes:
  chat: {{arms: {{prompted: {{target: large}}}}}}
""")
    gateway = ServerThread(create_app(Settings(policies_dir=policies, data_dir=tmp_path / "var"))).start()
    try:
        ready = poll(lambda: (r := httpx.get(gateway.url + "/readyz")).status_code == 200 and r.json(),
                     "the gateway to see the demo upstream")
        assert ready["checks"]["demo_upstream"] == "ok"
        demo.stop()
        down = httpx.get(gateway.url + "/readyz")
        assert down.status_code == 503
        assert down.json()["checks"]["demo_upstream"] == "unreachable: ConnectFailed"
    finally:
        gateway.stop()
