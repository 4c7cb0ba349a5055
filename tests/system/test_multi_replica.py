"""Three gateway processes on one Redis and one Chroma server: what replicas must share is shared.

One cluster serves every test here, since three gateways and Chroma take seconds to
start; each property uses its own routes, targets and experiment so the tests do
not disturb each other. Every chat request goes through ``Cluster.chat``, which
keeps the successful responses, so the ledger test compares the cluster's books
with everything the clients were told, whichever tests ran before it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from policies import assign, load_policies
from tests.support.chroma_server import ChromaServer
from tests.support.fake_upstream import Action, FakeUpstream
from tests.support.ledger import cluster_totals, cost_of
from tests.support.metrics import scrape
from tests.support.polling import poll
from tests.support.process import GatewayProcess
from tests.support.redis_server import delete_prefix, require_shared_redis, unique_prefix
from tests.support.servers import ServerThread

REPLICAS = 3
ADMIN_KEY = "multi-replica-admin"
POLICY = """
version: 1
targets:
  mr-large:
    provider: vllm
    model: mr-large-model
    api_base: {url}/v1
    price: {{input_per_million: 2.0, output_per_million: 8.0}}
  mr-small:
    provider: vllm
    model: mr-small-model
    api_base: {url}/v1
    price: {{input_per_million: 0.5, output_per_million: 1.0}}
  mr-flaky:
    provider: vllm
    model: mr-flaky-model
    api_base: {url}/v1
    price: {{input_per_million: 3.0, output_per_million: 12.0}}
    breaker: {{failures: 3, window_s: 600, cooldown_s: 3600}}
  mr-watched:
    provider: vllm
    model: mr-watched-model
    api_base: {url}/v1
    price: {{input_per_million: 1.0, output_per_million: 2.0}}
    breaker: {{failures: 1, window_s: 600, cooldown_s: 3600}}
routes:
  mr-ab:
    arms:
      prompted: {{target: mr-large}}
      fine_tuned: {{target: mr-small}}
  mr-breaker:
    arms:
      prompted:
        target: mr-flaky
        fallback: {{to: [{{target: mr-small}}], triggers: [server_error, circuit_open]}}
  mr-watched:
    arms:
      prompted:
        target: mr-watched
        fallback: {{to: [{{target: mr-small}}], triggers: [server_error, circuit_open]}}
  mr-kb:
    arms:
      prompted:
        target: mr-large
        system_prompt: You answer questions about Glacier Post.
        knowledge: {{collection: mr-facts, top_k: 2, min_score: 0.3, timeout_ms: 10000}}
experiments:
  mr-split:
    route: mr-ab
    variants:
      control: {{weight: 70, arm: prompted}}
      treatment: {{weight: 30, arm: fine_tuned}}
"""
FACT = ("# Glacier Post delivery\n\nGlacier Post carries parcels across the ice sheet by dog sled, "
        "leaving the harbour depot every second Thursday at dawn.\n")
QUESTION = "When does the Glacier Post dog sled leave with parcels?"


@dataclass
class Cluster:
    gateways: list[GatewayProcess]
    policies: Path
    client: httpx.Client
    answered: list[httpx.Response] = field(default_factory=list)

    def url(self, replica: int) -> str:
        return self.gateways[replica].url

    def chat(self, replica: int, route: str, content: str = "hi", **extra: object) -> httpx.Response:
        """One chat request to one replica; successful responses are kept for the ledger check."""
        response = self.client.post(self.url(replica) + "/v1/chat/completions", json={
            "model": route, "messages": [{"role": "user", "content": content}], **extra})
        if response.status_code == 200:
            self.answered.append(response)  # list.append is atomic: safe from the traffic threads
        return response

    def admin(self, replica: int, path: str, body: object) -> httpx.Response:
        return self.client.post(f"{self.url(replica)}/admin/knowledge/{path}", json=body,
                                headers={"authorization": f"Bearer {ADMIN_KEY}"})


def _stop(gateway: GatewayProcess) -> None:
    if gateway.process is not None:
        gateway.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory,
            fake_server: tuple[FakeUpstream, ServerThread]) -> Iterator[Cluster]:
    redis_url, prefix = require_shared_redis(), unique_prefix()
    policies = tmp_path_factory.mktemp("multi-replica")
    (policies / "policy.yaml").write_text(POLICY.format(url=fake_server[1].url))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(lambda: asyncio.run(delete_prefix(redis_url, prefix)))
        chroma = cleanup.enter_context(ChromaServer())
        # No access log: nobody reads the children's stdout pipe until they stop, and a full pipe blocks them.
        env = {"HYBRID_GATEWAY_REDIS_URL": redis_url, "HYBRID_GATEWAY_REDIS_PREFIX": prefix,
               "HYBRID_GATEWAY_CHROMA_URL": chroma.url, "HYBRID_GATEWAY_ADMIN_KEYS": ADMIN_KEY,
               "HYBRID_GATEWAY_ACCESS_LOG": "0", "HF_HUB_OFFLINE": "1"}
        gateways = [GatewayProcess("--policies", str(policies), env=env) for _ in range(REPLICAS)]
        for gateway in gateways:
            cleanup.callback(_stop, gateway)
        with ThreadPoolExecutor(REPLICAS) as starting:  # each start waits on /readyz, knowledge included
            list(starting.map(lambda gateway: gateway.start(timeout_s=180), gateways))
        client = cleanup.enter_context(httpx.Client(timeout=60))
        yield Cluster(gateways, policies, client)


def models_called(fake: FakeUpstream, model: str) -> int:
    return sum(body["model"] == model for body in fake.received)


@pytest.mark.multiprocess
@pytest.mark.usefixtures("fake")
def test_every_replica_gives_a_user_the_same_variant(cluster: Cluster) -> None:
    experiment = load_policies(cluster.policies).experiments["mr-split"]
    arms = {name: variant.arm for name, variant in experiment.variants.items()}
    expected: dict[str, str] = {}
    for index in range(40):
        user = f"mr-user-{index}"
        assignment = assign("mr-split", experiment, user)
        assert assignment is not None
        expected[user] = assignment.variant
        for replica in range(REPLICAS):
            response = cluster.chat(replica, "mr-ab", user=user)
            assert response.status_code == 200
            assert (response.headers["x-gateway-variant"], response.headers["x-gateway-assignment"]) == (
                expected[user], "keyed")
            assert response.headers["x-gateway-arm"] == arms[expected[user]]
    per_variant = Counter(expected.values())
    assert set(per_variant) == {"control", "treatment"}  # both sides were exercised

    def reported() -> dict[str, int]:
        body = cluster.client.get(cluster.url(REPLICAS - 1) + "/v1/experiments/mr-split").json()
        return {variant["name"]: variant["n"] for variant in body["variants"]}

    # Outcomes are written off the request path: poll until every replica's requests are in the report.
    wanted = {name: REPLICAS * count for name, count in per_variant.items()}
    poll(lambda: reported() == wanted, "the shared experiment report")


@pytest.mark.multiprocess
def test_a_breaker_opened_through_one_replica_is_open_on_all(cluster: Cluster, fake: FakeUpstream) -> None:
    failures = 3  # mr-flaky's breaker.failures
    fake.script_for("mr-flaky-model", *[Action(status=500)] * failures)
    for _ in range(failures):
        response = cluster.chat(0, "mr-breaker")
        assert response.status_code == 200
        assert response.headers["x-gateway-fallback"] == "mr-flaky>mr-small:server_error"
    assert models_called(fake, "mr-flaky-model") == failures
    for replica in range(REPLICAS):
        for _ in range(2):
            response = cluster.chat(replica, "mr-breaker")
            assert response.status_code == 200
            assert response.headers["x-gateway-fallback"] == "mr-flaky>mr-small:circuit_open"
            assert response.headers["x-gateway-target"] == "mr-small"
    assert models_called(fake, "mr-flaky-model") == failures  # no replica called the open target again
    assert models_called(fake, "mr-small-model") == failures + 2 * REPLICAS


@pytest.mark.multiprocess
def test_every_replica_reports_the_shared_open_breaker(cluster: Cluster, fake: FakeUpstream) -> None:
    fake.script_for("mr-watched-model", Action(status=500))
    assert cluster.chat(0, "mr-watched").headers["x-gateway-fallback"] == "mr-watched>mr-small:server_error"
    for replica in range(1, REPLICAS):
        assert cluster.chat(replica, "mr-watched").headers["x-gateway-fallback"] == (
            "mr-watched>mr-small:circuit_open")
    assert models_called(fake, "mr-watched-model") == 1
    # gateway_circuit_open: "1 while a target's circuit breaker is open or half-open", on every replica.
    states = [scrape(gateway.url, "gateway_circuit_open", target="mr-watched") for gateway in cluster.gateways]
    assert states == [1.0] * REPLICAS


@pytest.mark.multiprocess
def test_knowledge_ingested_through_one_replica_is_retrieved_by_the_others(cluster: Cluster,
                                                                          fake: FakeUpstream) -> None:
    assert cluster.chat(1, "mr-kb", QUESTION).headers["x-gateway-rag"] == "miss"  # nothing ingested yet
    added = cluster.admin(0, "mr-facts/documents", {"documents": [{"source": "glacier.md", "text": FACT}]})
    assert added.status_code == 200 and added.json()["files_ok"] == ["glacier.md"]
    for replica in range(1, REPLICAS):
        response = cluster.chat(replica, "mr-kb", QUESTION)
        assert response.headers["x-gateway-rag"] == "hit"
        assert response.headers["x-gateway-sources"] == "glacier.md"
        assert "every second Thursday" in fake.received[-1]["messages"][0]["content"]
        hits = cluster.admin(replica, "mr-facts/query", {"query": QUESTION, "k": 1}).json()["hits"]
        assert hits[0]["source"] == "glacier.md"


@pytest.mark.multiprocess
@pytest.mark.usefixtures("fake")  # a script left by another module would fail these requests
def test_the_ledger_adds_up_every_response_of_every_replica(cluster: Cluster) -> None:
    def ask(index: int) -> httpx.Response:
        route = ("mr-ab", "mr-kb")[index % 2]
        return cluster.chat(index % REPLICAS, route, f"question {index}", user=f"mr-ledger-{index}",
                            stream=index % 3 == 0)

    with ThreadPoolExecutor(6) as traffic:  # concurrent writes from all replicas
        assert all(response.status_code == 200 for response in traffic.map(ask, range(30)))
    answered = len(cluster.answered)
    total = sum(cost_of(response) for response in cluster.answered)
    assert total > 0
    for gateway in cluster.gateways:
        poll(lambda url=gateway.url: cluster_totals(url)[1] == answered, "the cluster ledger")
        scope, requests, cost = cluster_totals(gateway.url)
        assert (scope, requests) == ("cluster", answered)
        assert cost == pytest.approx(total, rel=1e-9)
    # Prometheus sums the replicas' own counters; they must tell the same story.
    assert sum(scrape(g.url, "gateway_cost_usd_total") for g in cluster.gateways) == pytest.approx(total, rel=1e-9)
    assert sum(scrape(g.url, "gateway_requests_total", status="200") for g in cluster.gateways) == answered
