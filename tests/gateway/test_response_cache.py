"""The response cache over real HTTP: a hit replays the answer byte for byte, costs nothing and is counted once.

The fake upstream's call log proves whether the upstream was asked; the bill is checked in the headers, the
Prometheus counters and the economics window (which a hit must not enter: neither arm was paid).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import redis

from gateway.api_keys import ApiKey
from gateway.settings import digest_key
from retrieval import KnowledgeStore, ingest_paths
from tests.conftest import BIG_MODEL, GatewayFactory
from tests.support.chat import chat
from tests.support.clock import FakeClock
from tests.support.fake_upstream import Action, FakeUpstream
from tests.support.knowledge import SHIPPING_FACT, wait_knowledge_loaded
from tests.support.ledger import cost_of
from tests.support.metrics import metric_sum, scrape
from tests.support.polling import poll
from tests.support.servers import ServerThread

CACHED = """
version: 1
routes:
  cached:
    cache: {ttl_s: 60, max_entries: 2}
    arms: {prompted: {target: big}}
    economics: {upfront_usd: 1, projected_monthly_queries: 1000}
  also-cached:
    cache: {ttl_s: 60}
    arms: {prompted: {target: big}}
  sampled:
    cache: {allow_sampled: true, max_entry_bytes: 400}
    arms: {prompted: {target: big}}
  grounded:
    cache: {}
    arms:
      prompted:
        target: big
        knowledge: {collection: facts, top_k: 2, min_score: 0.3}
"""
ADMIN = {"authorization": "Bearer admin-secret"}
COLD = {"temperature": 0}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gateway(start_gateway: GatewayFactory, policy_dir: Path, fake: FakeUpstream, clock: FakeClock) -> ServerThread:
    (policy_dir / "cache.yaml").write_text(CACHED)
    return start_gateway(clock=clock)


def asked(fake: FakeUpstream) -> int:
    return len(fake.received)


def test_a_hit_replays_the_answer_for_nothing(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(BIG_MODEL, Action(text="Refunds take five days."))
    first = chat(gateway, "cached", "How long do refunds take?", expect=200, **COLD)
    assert first.headers["x-gateway-cache"] == "miss"
    second = chat(gateway, "cached", "How long do refunds take?", expect=200, **COLD)
    assert asked(fake) == 1  # the second answer came from the cache
    assert second.headers["x-gateway-cache"] == "hit" and second.content == first.content
    assert cost_of(second) == 0 and float(second.headers["x-gateway-cache-saved-usd"]) == pytest.approx(cost_of(first))
    assert second.headers["x-gateway-request-id"] != first.headers["x-gateway-request-id"]
    # Counted once each; billed once; the saving on its own counter.
    assert scrape(gateway.url, "gateway_requests_total", route="cached") == 2
    assert scrape(gateway.url, "gateway_cost_usd_total", route="cached") == pytest.approx(cost_of(first))
    assert scrape(gateway.url, "gateway_cache_lookups_total", route="cached", result="hit") == 1
    assert scrape(gateway.url, "gateway_cache_saved_usd_total", route="cached") == pytest.approx(cost_of(first))
    assert scrape(gateway.url, "gateway_tokens_total", route="cached", direction="output") == 4  # one answer's words
    # The break-even sees the paid request only: no arm served the hit.
    [entry] = [e for e in httpx.get(gateway.url + "/v1/economics").json()["routes"] if e["route"] == "cached"]
    assert (entry["requests"], entry["prompted_requests"]) == (1, 1)


def test_a_different_request_or_route_is_a_miss(gateway: ServerThread, fake: FakeUpstream) -> None:
    chat(gateway, "cached", "one", expect=200, **COLD)
    assert chat(gateway, "cached", "two", expect=200, **COLD).headers["x-gateway-cache"] == "miss"
    assert chat(gateway, "cached", "one", expect=200, temperature=0, max_tokens=5).headers["x-gateway-cache"] == "miss"
    # The same request to another route never gets this route's entry.
    assert chat(gateway, "also-cached", "one", expect=200, **COLD).headers["x-gateway-cache"] == "miss"
    assert asked(fake) == 4


def test_sampling_requests_are_not_cached_unless_the_route_allows_it(gateway: ServerThread,
                                                                     fake: FakeUpstream) -> None:
    for _ in range(2):
        assert "x-gateway-cache" not in chat(gateway, "cached", "hi", expect=200).headers  # temperature absent: 1
        assert "x-gateway-cache" not in chat(gateway, "cached", "hi", expect=200, temperature=0.7).headers
    assert asked(fake) == 4
    assert chat(gateway, "sampled", "hi", expect=200).headers["x-gateway-cache"] == "miss"
    assert chat(gateway, "sampled", "hi", expect=200).headers["x-gateway-cache"] == "hit"


def test_entries_expire_and_the_least_recently_used_goes_first(gateway: ServerThread, fake: FakeUpstream,
                                                                clock: FakeClock) -> None:
    def result(content: str) -> str:
        return chat(gateway, "cached", content, expect=200, **COLD).headers["x-gateway-cache"]

    assert [result("a"), result("b"), result("a"), result("c")] == ["miss", "miss", "hit", "miss"]
    assert [result("a"), result("b")] == ["hit", "miss"]  # max_entries 2: "b", used least recently, went
    clock.now += 61
    assert result("a") == "miss"  # past ttl_s


def test_an_answer_larger_than_max_entry_bytes_is_not_kept(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(BIG_MODEL, Action(text="long " * 100), Action(text="long " * 100))
    assert [chat(gateway, "sampled", "essay", expect=200).headers["x-gateway-cache"] for _ in range(2)] == [
        "miss", "miss"]


def test_a_stream_is_replayed_from_the_cache(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(BIG_MODEL, Action(text="Streamed once."))
    first = chat(gateway, "cached", "stream it", expect=200, stream=True, **COLD)
    second = chat(gateway, "cached", "stream it", expect=200, stream=True, **COLD)
    assert asked(fake) == 1 and second.headers["x-gateway-cache"] == "hit"

    def data(response: httpx.Response) -> list[str]:
        return [line for line in response.text.splitlines() if line.startswith("data:")]

    assert data(second) == data(first) and "once." in second.text
    assert ": x-gateway-cost-usd=0.00000000" in second.text
    # A streamed request never gets a JSON entry, nor the reverse: the key is the whole upstream request.
    assert chat(gateway, "cached", "stream it", expect=200, **COLD).headers["x-gateway-cache"] == "miss"


def test_a_knowledge_update_changes_the_key(start_gateway: GatewayFactory, policy_dir: Path, fake: FakeUpstream,
                                            tmp_path: Path) -> None:
    (policy_dir / "cache.yaml").write_text(CACHED)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "shipping.md").write_text(SHIPPING_FACT)
    ingest_paths(KnowledgeStore.embedded(tmp_path / "var" / "chroma"), [docs], "facts", base_dir=docs)
    gateway = start_gateway(admin_key_digests=frozenset({digest_key("admin-secret")}))
    assert wait_knowledge_loaded(gateway.url)["status"] == "ready"
    question = "When can I get tea delivered on Mars?"
    assert [chat(gateway, "grounded", question, expect=200, **COLD).headers["x-gateway-cache"]
            for _ in range(2)] == ["miss", "hit"]
    changed = {"source": "shipping.md", "text": SHIPPING_FACT.replace("every 26 months", "every 13 months")}
    assert httpx.post(gateway.url + "/admin/knowledge/facts/documents", json={"documents": [changed]},
                      headers=ADMIN, timeout=30).status_code == 200
    response = chat(gateway, "grounded", question, expect=200, **COLD)
    assert response.headers["x-gateway-cache"] == "miss"
    assert "every 13 months" in fake.received[-1]["messages"][0]["content"]
    assert asked(fake) == 2


def test_replicas_share_entries_through_redis(start_gateway: GatewayFactory, policy_dir: Path, fake: FakeUpstream,
                                              shared_redis: tuple[str, str]) -> None:
    url, prefix = shared_redis
    (policy_dir / "cache.yaml").write_text(CACHED)
    one, two = (start_gateway(redis_url=url, redis_prefix=prefix) for _ in range(2))
    first = chat(one, "cached", "shared", expect=200, **COLD)
    assert first.headers["x-gateway-cache"] == "miss"
    client = redis.Redis.from_url(url)
    poll(lambda: any(client.scan_iter(match=prefix + "cache:*")), "the entry to reach Redis")
    second = chat(two, "cached", "shared", expect=200, **COLD)
    assert second.headers["x-gateway-cache"] == "hit" and second.content == first.content
    assert asked(fake) == 1
    ttl = client.ttl(next(client.scan_iter(match=prefix + "cache:*")))
    assert 0 < ttl <= 60  # Redis expires it after the route's ttl_s
    # The cluster ledger counts both answers once: the hit under the cache's own arm, at no cost.
    def rows() -> dict[str, dict[str, float]]:
        found = httpx.get(one.url + "/v1/ledger").json()
        return {row["arm"]: row for row in found["rows"] if row["route"] == "cached"}

    ledger = poll(lambda: (found := rows()).get("cache") and found, "the hit in the cluster ledger")
    assert (ledger["prompted"]["requests"], ledger["cache"]["requests"]) == (1, 1)
    assert ledger["prompted"]["cost_usd"] == pytest.approx(cost_of(first)) and ledger["cache"]["cost_usd"] == 0


def test_redis_down_keeps_the_cache_in_the_process(start_gateway: GatewayFactory, policy_dir: Path,
                                                   fake: FakeUpstream) -> None:
    (policy_dir / "cache.yaml").write_text(CACHED)
    gateway = start_gateway(redis_url="redis://127.0.0.1:9/0")  # nothing listens there
    results = [chat(gateway, "cached", "still here", expect=200, **COLD).headers["x-gateway-cache"] for _ in range(2)]
    assert results == ["miss", "hit"] and asked(fake) == 1
    assert scrape(gateway.url, "gateway_redis_up") == 0


def test_concurrent_repeats_are_each_counted_once(gateway: ServerThread, fake: FakeUpstream) -> None:
    """Twenty identical requests at once: those that found no entry yet went upstream, the rest were hits."""

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
            body = {"model": "cached", "temperature": 0, "messages": [{"role": "user", "content": "same"}]}
            return list(await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(20))))

    responses = asyncio.run(burst())
    results = [r.headers["x-gateway-cache"] for r in responses]
    assert [r.status_code for r in responses] == [200] * 20
    assert results.count("miss") == asked(fake) >= 1
    assert len({r.content for r in responses}) == 1
    assert scrape(gateway.url, "gateway_requests_total", route="cached") == 20
    assert scrape(gateway.url, "gateway_cache_lookups_total", route="cached", result="hit") == results.count("hit")
    assert scrape(gateway.url, "gateway_cost_usd_total") == pytest.approx(sum(cost_of(r) for r in responses))
    assert sum(cost_of(r) for r in responses) == pytest.approx(results.count("miss") * cost_of(responses[results.index("miss")]))


def test_the_responses_api_is_cached_on_the_same_route(gateway: ServerThread, fake: FakeUpstream) -> None:
    body = {"model": "cached", "input": "What is the refund window?", "temperature": 0}
    first, second = (httpx.post(gateway.url + "/v1/responses", json=body, timeout=30) for _ in range(2))
    assert (first.status_code, second.status_code) == (200, 200)
    assert [first.headers["x-gateway-cache"], second.headers["x-gateway-cache"]] == ["miss", "hit"]
    assert asked(fake) == 1
    # The same answer under this response's own ids.
    assert [item["content"] for item in second.json()["output"]] == [item["content"] for item in first.json()["output"]]
    assert second.json()["id"] != first.json()["id"] and cost_of(second) == 0


def test_a_key_never_gets_a_route_it_may_not_call_from_the_cache(start_gateway: GatewayFactory, policy_dir: Path,
                                                                  fake: FakeUpstream) -> None:
    """A key allowed "cached" fills the entry; a key allowed only "also-cached" asking the same is refused before
    any lookup, over chat and the Responses API alike, and never sees the answer."""
    (policy_dir / "cache.yaml").write_text(CACHED)
    wide, narrow = ApiKey("wide", digest_key("sk-wide"), routes=("cached",)), ApiKey(
        "narrow", digest_key("sk-narrow"), routes=("also-cached",))
    gateway = start_gateway(api_keys=(wide, narrow))
    filled = chat(gateway, "cached", "secret plans", headers={"authorization": "Bearer sk-wide"}, expect=200, **COLD)
    assert filled.headers["x-gateway-cache"] == "miss"
    refused = chat(gateway, "cached", "secret plans", headers={"authorization": "Bearer sk-narrow"}, **COLD)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "model_not_found"
    also = httpx.post(gateway.url + "/v1/responses", headers={"authorization": "Bearer sk-narrow"}, timeout=30,
                      json={"model": "cached", "input": "secret plans", "temperature": 0})
    assert also.status_code == 404 and "Hello" not in also.text
    assert asked(fake) == 1
    metrics = httpx.get(gateway.url + "/metrics", headers={"authorization": "Bearer sk-wide"}).text
    assert metric_sum(metrics, "gateway_cache_lookups_total", route="cached") == 1  # the refused made none
