"""Slow and huge requests cannot hold the gateway: header limits, read timeouts, a concurrency limit.

The header and timeout limits live in ``hybrid-gateway serve``'s HTTP protocol, so they are tested
against a real served process, with small limits, over raw sockets; the concurrency limit against an
upstream that holds requests until the test releases them.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.edge_settings import EdgeSettings
from tests.conftest import GatewayFactory
from tests.support.metrics import scrape
from tests.support.polling import poll
from tests.support.process import GatewayProcess
from tests.support.servers import ServerThread

LIMITS = {"HYBRID_GATEWAY_HEADER_TIMEOUT_S": "0.5", "HYBRID_GATEWAY_BODY_TIMEOUT_S": "0.5",
          "HYBRID_GATEWAY_MAX_HEADER_BYTES": "8192", "HYBRID_GATEWAY_MAX_HEADERS": "20",
          "HYBRID_GATEWAY_DEMO_LATENCY_SCALE": "0"}
CHAT = json.dumps({"model": "support", "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.fixture(scope="module")
def served() -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(env=LIMITS).start()
    yield gateway
    gateway.stop()


def exchange(gateway: GatewayProcess, *parts: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send ``parts`` on a fresh connection, then read until the server closes it: (status line, headers, body)."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as raw:
        for part in parts:
            raw.sendall(part)
        reply = b""
        while chunk := raw.recv(65536):  # returns b"" once the server has closed the connection
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    return status, {k.lower(): v for k, _, v in (line.partition(": ") for line in lines)}, body


def error_code(body: bytes) -> str:
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return str(error["code"])


@pytest.mark.multiprocess
def test_headers_that_never_end_get_408_and_the_connection_closes(served: GatewayProcess) -> None:
    status, headers, body = exchange(served, b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n")
    assert status.startswith("HTTP/1.1 408") and headers["connection"] == "close"
    assert error_code(body) == "request_timeout"


@pytest.mark.multiprocess
def test_a_connection_that_sends_nothing_is_closed(served: GatewayProcess) -> None:
    assert exchange(served) == ("", {}, b"")  # closed without a word, like an idle kept-alive connection


@pytest.mark.multiprocess
def test_a_body_that_never_ends_gets_408_and_is_counted(served: GatewayProcess) -> None:
    status, headers, body = exchange(served, b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                                             b"content-type: application/json\r\ncontent-length: %d\r\n\r\n"
                                             % len(CHAT), CHAT[:10])
    assert status.startswith("HTTP/1.1 408") and headers["connection"] == "close"
    assert error_code(body) == "request_timeout"
    assert scrape(served.url, "gateway_requests_total", status="408") == 1
    assert scrape(served.url, "gateway_requests_total", status="500") == 0


@pytest.mark.multiprocess
def test_oversized_headers_get_431(served: GatewayProcess) -> None:
    status, headers, body = exchange(served, b"GET /v1/models HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: "
                                             + b"a" * 9000)
    assert status.startswith("HTTP/1.1 431") and headers["connection"] == "close"
    assert error_code(body) == "request_headers_too_large"
    assert b"8192 bytes" in body


@pytest.mark.multiprocess
def test_too_many_headers_get_431(served: GatewayProcess) -> None:
    many = b"".join(b"x-h%d: v\r\n" % i for i in range(30))
    status, _, body = exchange(served, b"GET /v1/models HTTP/1.1\r\nhost: 127.0.0.1\r\n" + many + b"\r\n")
    assert status.startswith("HTTP/1.1 431") and b"more than 20 headers" in body


@pytest.mark.multiprocess
def test_requests_within_the_limits_are_served_on_one_kept_alive_connection(served: GatewayProcess) -> None:
    headers = {f"x-h{i}": "v" for i in range(10)}  # httpx adds 7 of its own: 18 of the 20 allowed
    with httpx.Client(base_url=served.url, timeout=30) as client:
        for _ in range(3):
            assert client.post("/v1/chat/completions", content=CHAT, headers={
                **headers, "content-type": "application/json", "x-gateway-arm": "fine_tuned"}).status_code == 200


class Gate:
    """An OpenAI-compatible upstream that holds every chat request until ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.waiting = 0

    async def chat(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.waiting += 1
        await asyncio.to_thread(self.release.wait, 30)
        return JSONResponse({"id": "c", "object": "chat.completion", "created": 1, "model": body["model"],
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": "ok"}}]})


@pytest.fixture
def gate(policy_dir: Path) -> Iterator[Gate]:
    gate = Gate()
    server = ServerThread(Starlette(routes=[Route("/v1/chat/completions", gate.chat, methods=["POST"])])).start()
    (policy_dir / "gate.yaml").write_text(f"""
version: 1
targets:
  gated: {{provider: vllm, model: gated-model, api_base: "{server.url}/v1", timeout_s: 60}}
routes:
  gated:
    arms: {{prompted: {{target: gated}}}}
""")
    yield gate
    gate.release.set()
    server.stop()


def test_a_saturated_process_answers_503_with_retry_after(start_gateway: GatewayFactory, gate: Gate) -> None:
    gateway = start_gateway(edge=EdgeSettings(max_concurrency=2))

    def chat() -> httpx.Response:
        return httpx.post(gateway.url + "/v1/chat/completions", timeout=60,
                          json={"model": "gated", "messages": [{"role": "user", "content": "hi"}]})

    with ThreadPoolExecutor(2) as pool:
        held = [pool.submit(chat) for _ in range(2)]
        poll(lambda: gate.waiting == 2, "both requests to reach the upstream")
        refused = chat()
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "overloaded"
        assert httpx.get(gateway.url + "/healthz").status_code == 200  # probes and scrapes are never refused
        assert scrape(gateway.url, "gateway_refused_requests_total", reason="overloaded") == 1
        gate.release.set()
        assert [future.result().status_code for future in held] == [200, 200]
    assert chat().status_code == 200  # the slots are given back
