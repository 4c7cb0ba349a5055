"""The cluster ledger: two gateway processes on one Redis see the same totals, each request counted once."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import POLICY
from tests.support.fake_upstream import FakeUpstream
from tests.support.ledger import cluster_totals, cost_of
from tests.support.polling import poll
from tests.support.process import GatewayProcess
from tests.support.redis_server import RedisServer
from tests.support.servers import ServerThread


@pytest.mark.multiprocess
def test_two_processes_share_one_ledger(shared_redis: tuple[str, str]) -> None:
    url, prefix = shared_redis
    env = {"HYBRID_GATEWAY_REDIS_URL": url, "HYBRID_GATEWAY_REDIS_PREFIX": prefix,
           "HYBRID_GATEWAY_DEMO_LATENCY_SCALE": "0"}
    gateways = [GatewayProcess(env=env).start() for _ in range(2)]
    try:
        total = 0.0
        for index in range(12):
            body = {"model": "support", "user": f"u{index}", "stream": index % 3 == 0,
                    "messages": [{"role": "user", "content": f"question {index}: how do refunds work?"}]}
            response = httpx.post(gateways[index % 2].url + "/v1/chat/completions", json=body, timeout=30)
            assert response.status_code == 200
            total += cost_of(response)
        for gateway in gateways:
            poll(lambda g=gateway: cluster_totals(g.url)[1] == 12, "every replica's ledger")
            scope, requests, cost = cluster_totals(gateway.url)
            assert scope == "cluster" and requests == 12
            assert cost == pytest.approx(total, abs=1e-7)
        economics = httpx.get(gateways[0].url + "/v1/economics").json()
        assert economics["scope"] == "cluster" and economics["routes"][0]["requests"] == 12
    finally:
        for gateway in gateways:
            gateway.stop()


def test_outage_entries_are_replayed_once(tmp_path: Path, fake_server: tuple[FakeUpstream, ServerThread],
                                          fake: FakeUpstream) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "base.yaml").write_text(POLICY.format(url=fake_server[1].url))
    with RedisServer() as redis_server:
        gateway = ServerThread(create_app(Settings(policies_dir=policies, data_dir=tmp_path / "var",
                                                   redis_url=redis_server.url))).start()
        try:
            redis_server.stop()
            for _ in range(3):
                assert httpx.post(gateway.url + "/v1/chat/completions", json={
                    "model": "chat", "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
            assert cluster_totals(gateway.url)[0] == "process"
            redis_server.start()
            poll(lambda: cluster_totals(gateway.url)[:2] == ("cluster", 3), "the replayed entries")
            httpx.get(gateway.url + "/readyz")  # another probe: nothing may be replayed twice
            assert cluster_totals(gateway.url)[1] == 3
        finally:
            gateway.stop()
