"""A retry whose backoff cannot fit in the route's deadline is not taken: the chain falls back at once.

The attempt loop runs on a fake clock whose ``sleep`` only records and moves it,
so the backoff is a stated number of seconds, not a wall-clock wait; the calls
themselves are real HTTP to the scripted fake upstream on loopback. Full jitter
is made to draw its largest value so the backoff is exactly ``backoff_max_ms``.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from gateway.limits import Limits
from gateway.metrics import Metrics
from gateway.pipeline.attempts import Answered, AttemptRunner
from gateway.pipeline.plan import Plan
from gateway.upstream import UpstreamReply
from gateway.upstream.openai_compat import OpenAICompatibleClient
from policies import Retry, Target
from policies.runtime.breakers import LocalBreakers
from tests.support.clock import FakeClock
from tests.support.fake_upstream import Action, FakeUpstream
from tests.support.metrics import metric_sum
from tests.support.servers import ServerThread

BACKOFF_S = 5.0


class SleepRecorder:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.now += seconds


def plan(url: str, name: str, deadline_s: float, retry: Retry | None = None) -> Plan:
    target = Target(provider="vllm", model=f"{name}-model", api_base=f"{url}/v1", retry=retry or Retry())
    return Plan("route", "fine_tuned", name, target, {"model": target.model, "messages": [{"role": "user",
                "content": "hi"}]}, False, False, deadline_s=deadline_s, fallback_on=frozenset({"server_error"}))


@pytest.fixture
async def client() -> AsyncIterator[OpenAICompatibleClient]:
    upstream = OpenAICompatibleClient(Limits().max_upstream_reply_bytes)
    yield upstream
    await upstream.aclose()


async def run(client: OpenAICompatibleClient, url: str, deadline_s: float, sleep: SleepRecorder,
              metrics: Metrics) -> Answered[UpstreamReply]:
    retry = Retry(attempts=3, backoff_initial_ms=int(BACKOFF_S * 1000), backoff_max_ms=int(BACKOFF_S * 1000))
    runner = AttemptRunner(metrics, LocalBreakers(sleep.clock), clock=sleep.clock, sleep=sleep)

    async def call(chosen: Plan) -> UpstreamReply:
        return await client.complete(chosen.target, chosen.payload)

    answered = await runner.run(call, plan(url, "tuned", deadline_s, retry), iter([plan(url, "big", deadline_s)]))
    assert isinstance(answered, Answered), answered
    return answered


@pytest.mark.parametrize(("deadline_s", "slept", "served_by", "called", "skipped"), [
    (2.0, [], "big", ["tuned-model", "big-model"], 1),  # the 5 s backoff cannot fit: straight to the fallback
    (60.0, [BACKOFF_S], "tuned", ["tuned-model", "tuned-model"], 0),  # it fits: retried after exactly the backoff
])
async def test_backoff_longer_than_the_deadline_is_not_slept(
        client: OpenAICompatibleClient, fake_server: tuple[FakeUpstream, ServerThread], fake: FakeUpstream,
        monkeypatch: pytest.MonkeyPatch, deadline_s: float, slept: list[float], served_by: str,
        called: list[str], skipped: int) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    fake.script_for("tuned-model", Action(status=500))
    sleep = SleepRecorder(FakeClock())
    metrics = Metrics()
    answered = await run(client, fake_server[1].url, deadline_s, sleep, metrics)
    assert answered.plan.target_name == served_by
    assert sleep.slept == slept
    assert [body["model"] for body in fake.received] == called
    assert answered.effort.attempts == 2
    assert answered.effort.fallbacks == (("tuned>big:server_error",) if served_by == "big" else ())
    text = metrics.exposition().decode()
    assert metric_sum(text, "gateway_retries_skipped_total", target="tuned", reason="server_error") == skipped
    assert metric_sum(text, "gateway_retries_total", target="tuned") == 1 - skipped
