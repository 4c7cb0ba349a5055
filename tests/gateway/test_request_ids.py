"""The gateway keys its accounting on its own request id; the caller's ``x-request-id`` is only echoed and logged.

A caller that forwards one trace id over many LLM calls (or reuses another caller's) must still have every
call counted: in ``/v1/ledger`` and ``/v1/economics``, with the cluster ledger in Redis and without it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from gateway.pipeline.intake import new_request_id
from tests.conftest import GatewayFactory
from tests.support.fake_upstream import FakeUpstream
from tests.support.ledger import cluster_totals
from tests.support.policies import econ_route
from tests.support.polling import poll
from tests.support.servers import ServerThread

TRACE = "trace-forwarded-1"
SERVER_ID = re.compile(r"gw-[0-9a-f]{36}")


@pytest.fixture
def start(start_gateway: GatewayFactory, policy_dir: Path, fake: FakeUpstream) -> GatewayFactory:
    """Gateways (with their access log) that also serve route ``econ``, whose economics ``/v1/economics`` reports."""
    (policy_dir / "econ.yaml").write_text("version: 1\nroutes:" + econ_route(projected_monthly_queries=1000))
    return lambda **overrides: start_gateway(access_log=True, **overrides)


def _three_with_one_trace(gateway: ServerThread) -> list[httpx.Response]:
    """Three chat completions (one streamed) that all carry the same client ``x-request-id``."""
    responses = [httpx.post(gateway.url + "/v1/chat/completions", headers={"x-request-id": TRACE}, timeout=30,
                            json={"model": "econ", "stream": index == 2,
                                  "messages": [{"role": "user", "content": f"call {index}"}]})
                 for index in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert [r.headers["x-request-id"] for r in responses] == [TRACE] * 3  # echoed for correlation
    ours = [r.headers["x-gateway-request-id"] for r in responses]
    assert len(set(ours)) == 3 and all(SERVER_ID.fullmatch(found) for found in ours)
    return responses


def _econ_requests(gateway: ServerThread) -> tuple[str, float]:
    economics = httpx.get(gateway.url + "/v1/economics").json()
    return economics["scope"], next(row["requests"] for row in economics["routes"] if row["route"] == "econ")


def _assert_logged(out: str, responses: list[httpx.Response]) -> None:
    """One access-log line per request: the gateway's id as ``request_id``, the caller's as ``client_request_id``."""
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert sorted((line["request_id"], line["client_request_id"]) for line in lines) == sorted(
        (r.headers["x-gateway-request-id"], TRACE) for r in responses)


def test_one_client_id_over_three_requests_is_counted_three_times_in_redis(
        start: GatewayFactory, shared_redis: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    url, prefix = shared_redis
    gateway = start(redis_url=url, redis_prefix=prefix)
    responses = _three_with_one_trace(gateway)
    poll(lambda: cluster_totals(gateway.url)[:2] == ("cluster", 3), "three requests in the cluster ledger")
    assert _econ_requests(gateway) == ("cluster", 3)
    _assert_logged(capsys.readouterr().out, responses)


def test_one_client_id_over_three_requests_is_counted_three_times_without_redis(
        start: GatewayFactory, capsys: pytest.CaptureFixture[str]) -> None:
    gateway = start()
    responses = _three_with_one_trace(gateway)
    poll(lambda: cluster_totals(gateway.url)[1] == 3, "three requests in the ledger")
    assert _econ_requests(gateway)[1] == 3
    _assert_logged(capsys.readouterr().out, responses)


def test_an_error_names_both_ids_and_a_request_without_one_gets_the_gateway_id(gateway: ServerThread,
                                                                               fake: FakeUpstream) -> None:
    refused = httpx.post(gateway.url + "/v1/chat/completions", headers={"x-request-id": TRACE},
                         json={"model": "no-such-route", "messages": [{"role": "user", "content": "hi"}]})
    assert refused.status_code == 404
    assert refused.headers["x-request-id"] == TRACE and SERVER_ID.fullmatch(refused.headers["x-gateway-request-id"])
    anonymous = httpx.post(gateway.url + "/v1/chat/completions",
                           json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
    assert anonymous.headers["x-request-id"] == anonymous.headers["x-gateway-request-id"]


def test_gateway_ids_are_unique() -> None:
    made = {new_request_id() for _ in range(10_000)}
    assert len(made) == 10_000 and all(SERVER_ID.fullmatch(found) for found in made)
