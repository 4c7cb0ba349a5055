"""Circuit breakers: the state machine (same for both boards), replicas agreeing, and Redis outages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from policies.runtime.breakers import BreakerBoard, LocalBreakers, SharedBreakers, breaker_board
from policies.runtime.shared_state import SharedState
from policies.schema import Breaker
from tests.support.clock import FakeClock
from tests.support.redis_server import RedisServer, delete_prefix, require_shared_redis, unique_prefix

CONFIG = Breaker(failures=3, window_s=10.0, cooldown_s=5.0, half_open_probes=1)





@pytest.fixture(params=["local", "shared"])
async def board(request: pytest.FixtureRequest) -> AsyncIterator[tuple[BreakerBoard, FakeClock]]:
    clock = FakeClock()
    if request.param == "local":
        yield LocalBreakers(clock), clock
        return
    url, prefix = require_shared_redis(), unique_prefix()
    state = SharedState.connect(url, prefix=prefix)
    yield SharedBreakers(state, clock), clock
    assert state.failures == 0  # the shared variant really ran on Redis
    await state.aclose()
    await delete_prefix(url, prefix)


async def fail(board: BreakerBoard, times: int, config: Breaker = CONFIG, target: str = "t") -> None:
    for _ in range(times):
        await board.record(target, config, False)


async def test_opens_after_failures_within_the_window(board: tuple[BreakerBoard, FakeClock]) -> None:
    breakers, clock = board
    await fail(breakers, 2)
    await breakers.record("t", CONFIG, True)  # successes do not reset a sliding window
    assert await breakers.allow("t", CONFIG) is True
    assert breakers.states()["t"] == "closed"
    clock.now += 1
    await fail(breakers, 1)
    assert breakers.states()["t"] == "open"
    assert await breakers.allow("t", CONFIG) is False
    assert await breakers.allow("other", CONFIG) is True


async def test_failures_outside_the_window_do_not_count(board: tuple[BreakerBoard, FakeClock]) -> None:
    breakers, clock = board
    await fail(breakers, 2)
    clock.now += CONFIG.window_s + 0.001
    await fail(breakers, 2)
    assert await breakers.allow("t", CONFIG) is True
    clock.now += 1
    await fail(breakers, 1)  # three within ten seconds now
    assert await breakers.allow("t", CONFIG) is False


async def test_half_open_lets_the_probes_through_and_a_failed_probe_reopens(
        board: tuple[BreakerBoard, FakeClock]) -> None:
    breakers, clock = board
    await fail(breakers, 3)
    clock.now += CONFIG.cooldown_s - 0.001
    assert await breakers.allow("t", CONFIG) is False
    clock.now += 0.001
    assert await breakers.allow("t", CONFIG) is True  # the one probe
    assert await breakers.allow("t", CONFIG) is False
    assert breakers.states()["t"] == "half_open"
    await breakers.record("t", CONFIG, False)
    assert breakers.states()["t"] == "open"
    clock.now += CONFIG.cooldown_s - 0.001
    assert await breakers.allow("t", CONFIG) is False  # a whole new cooldown
    clock.now += 0.001
    assert await breakers.allow("t", CONFIG) is True


async def test_probe_successes_close_it(board: tuple[BreakerBoard, FakeClock]) -> None:
    breakers, clock = board
    config = CONFIG.model_copy(update={"half_open_probes": 2})
    await fail(breakers, 3, config)
    clock.now += config.cooldown_s
    assert [await breakers.allow("t", config) for _ in range(3)] == [True, True, False]
    await breakers.record("t", config, True)
    assert breakers.states()["t"] == "half_open"
    assert await breakers.allow("t", config) is False
    await breakers.record("t", config, True)
    assert breakers.states()["t"] == "closed"
    assert await breakers.allow("t", config) is True
    await fail(breakers, 2, config)  # the old failures are gone: it takes three again
    assert await breakers.allow("t", config) is True


async def test_late_results_while_open_are_ignored_and_a_lost_probe_round_expires(
        board: tuple[BreakerBoard, FakeClock]) -> None:
    breakers, clock = board
    await fail(breakers, 3)
    await breakers.record("t", CONFIG, True)  # a call admitted before it opened
    await fail(breakers, 1)
    clock.now += CONFIG.cooldown_s
    assert await breakers.allow("t", CONFIG) is True  # this probe never reports back
    assert await breakers.allow("t", CONFIG) is False
    clock.now += CONFIG.cooldown_s
    assert await breakers.allow("t", CONFIG) is True
    await breakers.record("t", CONFIG, True)
    assert breakers.states()["t"] == "closed"


async def test_two_replicas_share_one_breaker(shared_redis: tuple[str, str]) -> None:
    url, prefix = shared_redis
    clock = FakeClock()
    one, two = SharedState.connect(url, prefix=prefix), SharedState.connect(url, prefix=prefix)
    first, second = SharedBreakers(one, clock), SharedBreakers(two, clock)
    await fail(first, 2)
    await fail(second, 1)  # the failures of both replicas add up
    assert await first.allow("t", CONFIG) is False
    assert await second.allow("t", CONFIG) is False
    assert first.states() == second.states() == {"t": "open"}
    clock.now += CONFIG.cooldown_s
    allowed = [await first.allow("t", CONFIG), await second.allow("t", CONFIG)]
    assert allowed == [True, False]  # one probe across the fleet
    await first.record("t", CONFIG, True)
    assert await second.allow("t", CONFIG) is True
    assert second.states() == {"t": "closed"}
    await one.aclose()
    await two.aclose()


async def test_board_choice() -> None:
    local = SharedState.connect(None)
    assert isinstance(breaker_board(local), LocalBreakers)
    remote = SharedState.connect("redis://127.0.0.1:1/0")
    assert isinstance(breaker_board(remote), SharedBreakers)
    await remote.aclose()


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as running:
        yield running


async def test_falls_back_to_local_breakers_while_redis_is_down(server: RedisServer) -> None:
    clock, changes = FakeClock(), []
    state = SharedState.connect(server.url, prefix="b:", on_change=changes.append)
    breakers = SharedBreakers(state, clock)
    await fail(breakers, 3, target="a")
    assert await breakers.allow("a", CONFIG) is False

    server.stop()
    assert await breakers.allow("b", CONFIG) is True  # decided locally; the gateway keeps serving
    await fail(breakers, 3, target="b")
    assert await breakers.allow("b", CONFIG) is False
    assert breakers.states()["b"] == "open"
    assert (state.available, state.failures, changes) == (False, 1, [False])

    server.start()
    assert await state.probe() is True
    assert changes == [False, True]
    # Redis is the truth again (this restart lost its data) and the outage's local state is forgotten.
    assert await breakers.allow("b", CONFIG) is True
    assert await breakers.allow("a", CONFIG) is True
    await fail(breakers, 3, target="b")
    assert await breakers.allow("b", CONFIG) is False
    assert await state.run(lambda r: r.exists("b:breaker:{b}:state")) == 1
    await state.aclose()
