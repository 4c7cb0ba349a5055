"""Two gateway processes on one Redis hold a key to its limit between them, under concurrent load (issue 16).

Every request of a burst falls in one minute, so the sliding window must admit exactly the key's
``rpm`` of them across both replicas (or as many as its ``tpm`` holds), each admitted request seeing a
different count; the rest are refused with OpenAI's envelope and headers. The key's spend in Redis is the sum of what the answers said they cost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
import redis

from gateway.settings import digest_key
from tests.support.envelope import assert_envelope
from tests.support.fake_upstream import FakeUpstream
from tests.support.ledger import cost_of
from tests.support.metrics import metric_sum
from tests.support.polling import poll
from tests.support.process import GatewayProcess
from tests.support.redis_server import delete_prefix, require_shared_redis, unique_prefix
from tests.support.servers import ServerThread

LIMIT = 12
BURST = 4 * LIMIT
LIMITED, TOKENS, SPENDING = "sk-replicas-limited", "sk-replicas-tokens", "sk-replicas-spending"
# "q<n>" is 7 estimated prompt tokens; with max_tokens 9 a request reserves 16, what the fake upstream then
# reports (11 + 5): its settlement changes nothing, so the tokens limit admits exactly TPM // 16 of a burst.
ASKED_TOKENS = 16
TPM = ASKED_TOKENS * LIMIT
POLICY = """
version: 1
targets:
  kr-big:
    provider: vllm
    model: kr-big-model
    api_base: {url}/v1
    price: {{input_per_million: 2.0, output_per_million: 8.0}}
routes:
  kr-chat:
    arms:
      prompted: {{target: kr-big}}
"""
KEYS = f"""
version: 1
keys:
  limited:
    digest: sha256:{digest_key(LIMITED)}
    rpm: {LIMIT}
  tokens:
    digest: sha256:{digest_key(TOKENS)}
    tpm: {TPM}
  spending:
    digest: sha256:{digest_key(SPENDING)}
    monthly_budget_usd: 100
"""


@dataclass
class Replicas:
    gateways: list[GatewayProcess]
    redis_url: str
    prefix: str

    def chat(self, index: int, key: str, **extra: object) -> httpx.Response:
        gateway = self.gateways[index % len(self.gateways)]
        return httpx.post(gateway.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                          json={"model": "kr-chat", "messages": [{"role": "user", "content": f"q{index}"}],
                                **extra}, timeout=30)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory,
             fake_server: tuple[FakeUpstream, ServerThread]) -> Iterator[Replicas]:
    url, prefix = require_shared_redis(), unique_prefix()
    directory = tmp_path_factory.mktemp("key-replicas")
    (directory / "policies").mkdir()
    (directory / "policies" / "policy.yaml").write_text(POLICY.format(url=fake_server[1].url))
    (directory / "keys.yaml").write_text(KEYS)
    env = {"HYBRID_GATEWAY_REDIS_URL": url, "HYBRID_GATEWAY_REDIS_PREFIX": prefix,
           "HYBRID_GATEWAY_API_KEYS_FILE": str(directory / "keys.yaml"), "HYBRID_GATEWAY_ACCESS_LOG": "0",
           "HF_HUB_OFFLINE": "1"}
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(lambda: asyncio.run(delete_prefix(url, prefix)))
        gateways = [GatewayProcess("--policies", str(directory / "policies"), env=env) for _ in range(2)]
        for gateway in gateways:
            cleanup.callback(lambda g=gateway: g.process is not None and g.stop())
        with ThreadPoolExecutor(2) as starting:
            list(starting.map(lambda gateway: gateway.start(timeout_s=180), gateways))
        yield Replicas(gateways, url, prefix)


@pytest.mark.multiprocess
@pytest.mark.usefixtures("fake")
def test_two_replicas_admit_no_more_than_the_limit_between_them(replicas: Replicas) -> None:
    with ThreadPoolExecutor(16) as load:
        answers = list(load.map(lambda index: replicas.chat(index, LIMITED), range(BURST)))
    admitted = [answer for answer in answers if answer.status_code == 200]
    assert len(admitted) == LIMIT
    # Each admission saw the window the one before it left: one atomic count across both processes.
    assert sorted(int(a.headers["x-ratelimit-remaining-requests"]) for a in admitted) == list(range(LIMIT))
    assert all(a.headers["x-ratelimit-limit-requests"] == str(LIMIT) for a in admitted)
    refused = [answer for answer in answers if answer.status_code != 200]
    assert len(refused) == BURST - LIMIT
    for answer in refused:
        error = assert_envelope(answer, 429, "rate_limit_exceeded")
        assert f"Limit {LIMIT}, Used {LIMIT}" in error["message"]
        assert answer.headers["x-ratelimit-remaining-requests"] == "0"
        assert 1 <= int(answer.headers["retry-after"]) <= 60
    # Each replica was asked more than the limit: limits of their own would have admitted twice as many.
    per_replica = Counter(answer.url.port for answer in answers)
    assert sorted(per_replica.values()) == [BURST // 2, BURST // 2] and BURST // 2 > LIMIT


@pytest.mark.multiprocess
@pytest.mark.usefixtures("fake")
def test_two_replicas_admit_no_more_tokens_than_the_limit_between_them(replicas: Replicas) -> None:
    with ThreadPoolExecutor(16) as load:
        answers = list(load.map(lambda index: replicas.chat(index, TOKENS, max_tokens=9), range(BURST)))
    admitted = [answer for answer in answers if answer.status_code == 200]
    assert len(admitted) == LIMIT
    assert sorted(int(a.headers["x-ratelimit-remaining-tokens"]) for a in admitted) == [
        ASKED_TOKENS * n for n in range(LIMIT)]
    for answer in answers:
        if answer.status_code != 200:
            error = assert_envelope(answer, 429, "rate_limit_exceeded")
            assert f"tokens per min (TPM): Limit {TPM}, Used {TPM}, Requested {ASKED_TOKENS}" in error["message"]
            assert answer.headers["x-ratelimit-remaining-tokens"] == "0"


@pytest.mark.multiprocess
@pytest.mark.usefixtures("fake")
def test_the_keys_spend_is_the_sum_of_its_answers_costs_on_every_replica(replicas: Replicas) -> None:
    with ThreadPoolExecutor(8) as load:
        answers = list(load.map(lambda index: replicas.chat(index, SPENDING, stream=index % 3 == 0), range(30)))
    assert all(answer.status_code == 200 for answer in answers)
    total = sum(cost_of(answer) for answer in answers)
    assert total > 0
    spend = f"{replicas.prefix}keys:spend:{datetime.now(UTC):%Y-%m}"
    with redis.Redis.from_url(replicas.redis_url, decode_responses=True) as client:
        poll(lambda: float(client.hget(spend, "spending") or 0) == pytest.approx(total, rel=1e-9),
             "the key's spend in Redis")
    auth = {"authorization": f"Bearer {SPENDING}"}
    scraped = sum(metric_sum(httpx.get(g.url + "/metrics", headers=auth).text, "gateway_key_spend_usd_total",
                             key="spending") for g in replicas.gateways)
    assert scraped == pytest.approx(total, rel=1e-9)
