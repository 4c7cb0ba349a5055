"""Named keys with limits: routes, requests and tokens per minute, monthly budgets, per-key spend (issue 16).

Each limit is tested against both places a window can live: this process (the embedded default) and the
shared Redis (what replicas share), with a fake clock moving through the minute. Two real gateway processes
on one Redis are in ``tests/system/test_key_limits_replicas.py``.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import orjson
import pytest
import redis

from gateway.accounting import Arrival, Ledger, Usage, finish
from gateway.api_keys import ApiKey
from gateway.keys import month_of
from gateway.metrics import Metrics
from gateway.settings import digest_key
from policies import Target
from tests.conftest import GatewayFactory
from tests.support.clock import FakeClock
from tests.support.envelope import assert_envelope
from tests.support.fake_upstream import FakeUpstream
from tests.support.ledger import cost_of
from tests.support.metrics import metric_sum
from tests.support.polling import poll
from tests.support.redis_server import RedisServer, delete_prefix, require_shared_redis, unique_prefix
from tests.support.servers import ServerThread

SECRET = "sk-team-a"
OTHER = "sk-plain"
# The fake upstream answers 11 prompt and 5 completion tokens; route "chat" sends them to "big" ($2 / $8 per M).
ANSWER_COST = (11 * 2 + 5 * 8) / 1e6
RATE_HEADERS = [f"x-ratelimit-{what}-{unit}" for unit in ("requests", "tokens")
                for what in ("limit", "remaining", "reset")]

AUTH = {"authorization": f"Bearer {SECRET}"}


def named(**limits: object) -> ApiKey:
    return ApiKey("team-a", digest_key(SECRET), **limits)  # type: ignore[arg-type]


def metric(gateway: ServerThread, name: str, **labels: str) -> float:
    return metric_sum(httpx.get(gateway.url + "/metrics", headers=AUTH).text, name, **labels)


@dataclass
class Keyed:
    """Gateways whose one named key is given, its windows in this process or in the shared Redis."""

    start_gateway: GatewayFactory
    redis: tuple[str, str] | None
    clock: FakeClock = field(default_factory=FakeClock)

    def start(self, key: ApiKey, **settings: object) -> ServerThread:
        shared = {"redis_url": self.redis[0], "redis_prefix": self.redis[1]} if self.redis else {}
        return self.start_gateway(clock=self.clock, api_keys=(key,), api_key_digests=frozenset({digest_key(OTHER)}),
                                  **shared, **settings)

    def spent(self, gateway: ServerThread) -> float:
        """The key's month-to-date spend as its budget sees it: settled in Redis off the request path, or
        in this process before the answer leaves (when the key's metric has it too)."""
        if self.redis is None:
            return metric(gateway, "gateway_key_spend_usd_total", key="team-a")
        url, prefix = self.redis
        with redis.Redis.from_url(url, decode_responses=True) as client:
            return float(client.hget(f"{prefix}keys:spend:{month_of(self.clock.now)}", "team-a") or 0)


@pytest.fixture(params=["process", "redis"])
def keyed(request: pytest.FixtureRequest, start_gateway: GatewayFactory, fake: FakeUpstream) -> Iterator[Keyed]:
    shared = (require_shared_redis(), unique_prefix()) if request.param == "redis" else None
    yield Keyed(start_gateway, shared)
    if shared:
        asyncio.run(delete_prefix(*shared))


def ask(gateway: ServerThread, key: str = SECRET, model: str = "chat", content: str = "hi",
        **extra: object) -> httpx.Response:
    return httpx.post(gateway.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": model, "messages": [{"role": "user", "content": content}], **extra}, timeout=30)


def test_requests_per_minute_slide_with_the_clock(keyed: Keyed) -> None:
    clock = keyed.clock
    gateway = keyed.start(named(rpm=3))
    for remaining in (2, 1, 0):
        served = ask(gateway)
        assert served.status_code == 200
        assert served.headers["x-ratelimit-limit-requests"] == "3"
        assert served.headers["x-ratelimit-remaining-requests"] == str(remaining)
        assert served.headers["x-ratelimit-reset-requests"] == "1m0s"
        assert "x-ratelimit-limit-tokens" not in served.headers  # no tokens limit, no tokens headers
        clock.now += 10
    refused = ask(gateway)  # 30 s after the first: all three are still in its minute
    error = assert_envelope(refused, 429, "rate_limit_exceeded")
    assert error["type"] == "rate_limit_error"
    assert "requests per min (RPM): Limit 3, Used 3" in error["message"] and "team-a" in error["message"]
    assert refused.headers["retry-after"] == "30" and refused.headers["retry-after-ms"] == "30000"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"] == "50s"  # when the newest of the three leaves
    assert refused.headers["x-gateway-request-id"].startswith("gw-")
    clock.now += 29.999  # the first request's minute ends at 60 s exactly: still inside it
    assert ask(gateway).status_code == 429
    clock.now += 0.001
    again = ask(gateway)
    assert again.status_code == 200 and again.headers["x-ratelimit-remaining-requests"] == "0"
    # A refused request took no place in the window, and a plain key (no name) has no limits.
    assert all(ask(gateway, OTHER).status_code == 200 for _ in range(4))


def test_tokens_are_reserved_at_admission_and_settled_to_the_real_usage(keyed: Keyed) -> None:
    gateway = keyed.start(named(tpm=200))
    # "hi": 4 + 1 + 2 = 7 estimated prompt tokens, plus max_tokens 100 reserved.
    first = ask(gateway, max_tokens=100)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-tokens"] == "200"
    assert first.headers["x-ratelimit-remaining-tokens"] == str(200 - 107)
    # Once answered, the first request counts its real 16 tokens, not its 107: so 177 more fit (a refused
    # request takes nothing from the window, so asking again until the settlement lands changes nothing).
    second = poll(lambda: (r := ask(gateway, max_tokens=170)).status_code == 200 and r,
                  "the first request's settlement")
    assert second.headers["x-ratelimit-remaining-tokens"] == str(200 - 16 - 177)
    refused = ask(gateway, max_tokens=170)  # 16 + 16 (or 177, unsettled) + 177 > 200
    error = assert_envelope(refused, 429, "rate_limit_exceeded")
    assert "tokens per min (TPM): Limit 200, Used " in error["message"] and "Requested 177" in error["message"]
    assert int(refused.headers["retry-after"]) >= 1 and "x-should-retry" not in refused.headers
    too_large = ask(gateway, max_tokens=500)
    error = assert_envelope(too_large, 429, "rate_limit_exceeded")
    assert error["message"].startswith("Request too large for key 'team-a' on tokens per min (TPM): Limit 200")
    assert too_large.headers["x-should-retry"] == "false" and "retry-after" not in too_large.headers


def test_a_budget_stops_its_key_at_the_limit_and_spend_adds_up_the_cost_headers(keyed: Keyed) -> None:
    budget = 3.5 * ANSWER_COST  # the fourth request is admitted (3 spent < 3.5), the fifth is not
    gateway = keyed.start(named(monthly_budget_usd=budget))
    costs: list[float] = []
    for _ in range(4):
        served = ask(gateway)
        assert served.status_code == 200, served.text
        assert not any(name in served.headers for name in RATE_HEADERS)  # a budget alone has no rate headers
        costs.append(cost_of(served))
        # The budget sees an answer's cost once it is settled: wait for that before asking again.
        poll(lambda: keyed.spent(gateway) == pytest.approx(sum(costs), rel=1e-9), "the spend so far")
    assert sum(costs) >= budget > sum(costs[:-1])
    answer = ask(gateway)
    error = assert_envelope(answer, 429, "insufficient_quota")
    assert error["type"] == "insufficient_quota"
    assert error["message"].startswith("Key 'team-a' has used its monthly budget")
    assert answer.headers["x-should-retry"] == "false"
    assert metric(gateway, "gateway_key_spend_usd_total", key="team-a") == pytest.approx(sum(costs), rel=1e-9)
    assert metric(gateway, "gateway_key_requests_total", key="team-a", status="200") == 4
    assert metric(gateway, "gateway_key_requests_total", key="team-a", status="429") == 1
    assert metric(gateway, "gateway_key_tokens_total", key="team-a", direction="output") == 4 * 5
    assert ask(gateway, OTHER).status_code == 200  # other keys are not held back


def test_a_key_calls_only_its_routes(keyed: Keyed) -> None:
    gateway = keyed.start(named(routes=frozenset({"chat-small"})))
    assert ask(gateway, model="chat-small").status_code == 200
    for model in ("chat", "no-such-model"):  # a route it may not call looks like one that does not exist
        error = assert_envelope(ask(gateway, model=model), 404, "model_not_found", param="model")
        assert error["message"] == f"The model '{model}' does not exist or you do not have access to it."
    assert ask(gateway, OTHER, model="chat").status_code == 200
    # /v1/models lists what the key may call, as OpenAI lists the models a key has access to.
    listed = httpx.get(gateway.url + "/v1/models", headers=AUTH).json()["data"]
    assert [model["id"] for model in listed] == ["chat-small"]
    assert httpx.get(gateway.url + "/v1/models/chat-small", headers=AUTH).status_code == 200
    assert_envelope(httpx.get(gateway.url + "/v1/models/chat", headers=AUTH), 404, "model_not_found")
    everything = httpx.get(gateway.url + "/v1/models", headers={"authorization": f"Bearer {OTHER}"}).json()["data"]
    assert {"chat", "chat-small"} <= {model["id"] for model in everything}


def test_the_openai_sdk_raises_rate_limit_errors_and_does_not_retry_a_spent_budget(keyed: Keyed) -> None:
    gateway = keyed.start(named(rpm=1, monthly_budget_usd=0))
    sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=SECRET, max_retries=2)  # the SDK's default
    with pytest.raises(openai.RateLimitError) as raised:
        sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.code == "insufficient_quota" and raised.value.type == "insufficient_quota"
    # x-should-retry: false kept the SDK from trying twice more.
    assert metric(gateway, "gateway_key_requests_total", key="team-a", status="429") == 1


def test_the_openai_sdk_sees_rate_limit_exceeded(keyed: Keyed) -> None:
    gateway = keyed.start(named(rpm=1))
    sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=SECRET, max_retries=0)
    raw = sdk.chat.completions.with_raw_response.create(model="chat", messages=[{"role": "user", "content": "a"}])
    assert raw.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as raised:
        sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "b"}])
    assert raised.value.code == "rate_limit_exceeded"
    assert raised.value.response.headers["retry-after"] == "60"


def test_streams_and_embeddings_count_against_the_key(keyed: Keyed) -> None:
    gateway = keyed.start(named(rpm=2))
    streamed = ask(gateway, stream=True)
    assert streamed.status_code == 200 and streamed.headers["x-ratelimit-remaining-requests"] == "1"
    embedded = httpx.post(gateway.url + "/v1/embeddings", headers=AUTH,
                          json={"model": "embedder", "input": "hello"})
    assert embedded.status_code == 200 and embedded.headers["x-ratelimit-remaining-requests"] == "0"
    refused = ask(gateway, model="down")  # refused by the limit before its upstream is tried
    assert_envelope(refused, 429, "rate_limit_exceeded")
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"


def test_the_responses_api_counts_against_the_key_and_its_routes(keyed: Keyed) -> None:
    gateway = keyed.start(named(rpm=2, routes=("chat",)))

    def respond(model: str) -> httpx.Response:
        return httpx.post(gateway.url + "/v1/responses", headers=AUTH, json={"model": model, "input": "hi"},
                          timeout=30)

    served = respond("chat")
    assert served.status_code == 200 and served.headers["x-ratelimit-remaining-requests"] == "1"
    assert_envelope(respond("embedder"), 404, "model_not_found")  # not one of the key's routes
    assert ask(gateway).headers["x-ratelimit-remaining-requests"] == "0"  # chat and responses share the minute
    assert_envelope(respond("chat"), 429, "rate_limit_exceeded")


def test_a_request_admitted_then_failed_still_says_where_its_key_stands(keyed: Keyed) -> None:
    gateway = keyed.start(named(rpm=5, tpm=1000))
    failed = ask(gateway, model="down")  # admitted, then its upstream is unreachable
    assert_envelope(failed, 502, "upstream_connection_error")
    assert failed.headers["x-ratelimit-remaining-requests"] == "4"
    assert failed.headers["x-ratelimit-limit-tokens"] == "1000"
    # It used no tokens: once settled, a request for the whole limit fits (7 prompt tokens + 993); until then it
    # is refused, which leaves the window as it was.
    whole = poll(lambda: (r := ask(gateway, max_tokens=993)).status_code == 200 and r, "the failure's settlement")
    assert whole.headers["x-ratelimit-remaining-tokens"] == "0"


def test_a_budget_survives_a_restart_without_redis(start_gateway: GatewayFactory, fake: FakeUpstream,
                                                   tmp_path: Path) -> None:
    key = named(monthly_budget_usd=ANSWER_COST / 2)
    first = start_gateway(api_keys=(key,), data_dir=tmp_path / "kept")
    assert ask(first).status_code == 200
    first.stop()  # the spend is written to <data_dir>/key_spend.sqlite3 at shutdown
    second = start_gateway(api_keys=(key,), data_dir=tmp_path / "kept")
    assert_envelope(ask(second), 429, "insufficient_quota")


def test_workers_on_one_data_dir_see_each_others_spend(start_gateway: GatewayFactory, fake: FakeUpstream,
                                                       tmp_path: Path) -> None:
    key = named(monthly_budget_usd=1.5 * ANSWER_COST)
    first, second = (start_gateway(api_keys=(key,), data_dir=tmp_path / "shared") for _ in range(2))
    assert ask(second, model="unpriced").status_code == 200  # its first read: nothing spent yet
    assert [ask(first).status_code for _ in range(3)] == [200, 200, 429]  # 0, then 1 answer spent, then 2
    # The first one's spend reaches the file within a second, and the second reads it back as it judges
    # requests: its own cost nothing (an unpriced target), so only the other's spend can stop it.
    refused = poll(lambda: (r := ask(second, model="unpriced")).status_code == 429 and r,
                   "the other worker's spend", timeout_s=15)
    assert_envelope(refused, 429, "insufficient_quota")


def test_redis_down_falls_back_to_each_replicas_own_limits(start_gateway: GatewayFactory,
                                                           fake: FakeUpstream) -> None:
    with RedisServer() as redis_server:
        gateway = start_gateway(api_keys=(named(rpm=2),), redis_url=redis_server.url)
        assert ask(gateway).status_code == 200  # in Redis' window
        redis_server.stop()
        # This replica's own window starts empty: two more, then its own limit holds.
        assert [ask(gateway).status_code for _ in range(3)] == [200, 200, 429]
        assert metric(gateway, "gateway_key_limit_local_decisions_total") == 3
        readiness = httpx.get(gateway.url + "/readyz").json()
        assert readiness["status"] == "degraded" and readiness["checks"]["redis"].startswith("unreachable")
        redis_server.start()
        poll(lambda: httpx.get(gateway.url + "/readyz").json()["status"] == "ready", "Redis to be back")
        # Back on Redis (this one kept nothing on disk), whose window is the truth again: the local one is dropped.
        assert ask(gateway).status_code == 200
        assert metric(gateway, "gateway_key_limit_local_decisions_total") == 3


def test_spend_in_redis_is_the_sum_of_the_cost_headers(start_gateway: GatewayFactory, fake: FakeUpstream,
                                                       shared_redis: tuple[str, str]) -> None:
    url, prefix = shared_redis
    clock = FakeClock()
    gateway = start_gateway(clock=clock, api_keys=(named(),), redis_url=url, redis_prefix=prefix)
    answers = [ask(gateway, content=f"question {n}", stream=n % 2 == 1) for n in range(6)]
    assert all(answer.status_code == 200 for answer in answers)
    total = sum(cost_of(answer) for answer in answers)
    spend = f"{prefix}keys:spend:{month_of(clock.now)}"
    with redis.Redis.from_url(url, decode_responses=True) as client:
        poll(lambda: float(client.hget(spend, "team-a") or 0) == pytest.approx(total, rel=1e-9),
             "the key's spend in Redis")


def test_the_access_log_names_the_key() -> None:
    log = io.BytesIO()
    ledger = Ledger(Metrics(), log)
    ledger.close(finish(Arrival("gw-1", "chat").owned_by("0123456789abcdef", "team-a"),
                        target=Target(provider="vllm", model="m"), usage=Usage(3, 4)))
    ledger.close(finish(Arrival("gw-2", "chat")))
    first, second = (orjson.loads(line) for line in log.getvalue().splitlines())
    assert (first["key"], second["key"]) == ("team-a", None)
    assert ledger.metrics.key_tokens.labels("team-a", "output")._value.get() == 4
