"""SharedState: Redis when it answers, local state when it does not, and the way back."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from policies.runtime.shared_state import Script, SharedState
from tests.support.clock import FakeClock
from tests.support.process import free_port
from tests.support.redis_server import RedisServer


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as running:
        yield running


async def test_without_url_everything_is_local() -> None:
    state = SharedState.connect(None)
    called: list[bool] = []

    async def op(r: Redis) -> int:
        called.append(True)
        return 1

    assert (state.enabled, state.available) == (False, False)
    assert await state.run(op) is None
    assert await state.probe() is False
    assert called == [] and state.failures == 0
    assert state.key("breaker", "t") == "hg:breaker:t"
    await state.aclose()


async def test_runs_against_redis_under_the_prefix(shared_redis: tuple[str, str]) -> None:
    url, prefix = shared_redis
    state = SharedState.connect(url, prefix=prefix)
    key = state.key("a", "b")
    assert key == f"{prefix}a:b"
    assert await state.run(lambda r: r.set(key, "v")) is True
    assert await state.run(lambda r: r.get(key)) == "v"
    assert await state.probe() is True
    assert (state.available, state.failures, state.outages) == (True, 0, 0)
    await state.aclose()


async def test_pool_waits_for_a_connection_instead_of_raising(shared_redis: tuple[str, str]) -> None:
    url, prefix = shared_redis
    state = SharedState.connect(url, prefix=prefix, max_connections=2, timeout_s=2.0)
    key = state.key("counter")
    results = await asyncio.gather(*(state.run(lambda r: r.incr(key)) for _ in range(40)))
    assert sorted(results) == list(range(1, 41))  # a plain async pool raises "Too many connections"
    assert state.failures == 0
    await state.aclose()


async def test_scripts_are_loaded_again_after_the_script_cache_is_flushed(server: RedisServer) -> None:
    """A Redis restart or SCRIPT FLUSH empties the script cache; the next call loads the script again.

    On a private server: SCRIPT FLUSH is server-wide, and the shared one is never flushed.
    """
    state = SharedState.connect(server.url, prefix="t:")
    script = Script("return 'got ' .. ARGV[1]")
    sha = hashlib.sha1(script.source.encode()).hexdigest()
    assert await state.run(lambda r: r.script_exists(sha)) == [False]
    assert await state.run(lambda r: script(r, [], ["x"])) == "got x"
    assert await state.run(lambda r: r.script_exists(sha)) == [True]
    assert await state.run(lambda r: r.script_flush()) is True
    assert await state.run(lambda r: r.script_exists(sha)) == [False]
    assert await state.run(lambda r: script(r, [], ["y"])) == "got y"
    assert await state.run(lambda r: r.script_exists(sha)) == [True]
    assert (state.available, state.failures) == (True, 0)
    await state.aclose()


async def test_unreachable_redis_is_one_outage_not_one_error_per_call(caplog: pytest.LogCaptureFixture) -> None:
    clock, changes = FakeClock(), []
    state = SharedState.connect(f"redis://127.0.0.1:{free_port()}/0", on_change=changes.append, clock=clock)
    calls: list[bool] = []

    async def op(r: Redis) -> str:
        calls.append(True)
        return str(await r.ping())

    with caplog.at_level(logging.WARNING, logger="hybrid_gateway.policies"):
        assert await state.run(op) is None
        for _ in range(5):
            assert await state.run(op) is None  # skipped: no socket touched while down
    assert (state.available, state.failures, state.outages, changes) == (False, 1, 1, [False])
    assert calls == [True]
    assert state.pending_probe is None  # the retry interval has not passed
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    await state.aclose()


async def test_outage_and_restart_of_a_private_redis(server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    clock, changes, resyncs = FakeClock(), [], []
    state = SharedState.connect(server.url, prefix="t:", on_change=changes.append, clock=clock,
                                retry_interval_s=1.0)

    async def broken() -> None:
        raise ValueError("a subscriber's bug")

    async def resync() -> None:
        resyncs.append(await state.run(lambda r: r.dbsize()))

    state.on_resync(broken)
    state.on_resync(resync)
    assert await state.run(lambda r: r.set("t:k", "before")) is True

    server.stop()
    assert await state.run(lambda r: r.get("t:k")) is None
    assert (state.available, state.failures, changes) == (False, 1, [False])

    clock.now += 1.0  # the next call re-probes in the background, once
    assert await state.run(lambda r: r.get("t:k")) is None
    probe = state.pending_probe
    assert probe is not None
    assert await state.run(lambda r: r.get("t:k")) is None and state.pending_probe is probe
    assert await probe is False
    assert (state.failures, changes) == (2, [False])

    server.start()
    clock.now += 1.0
    assert await state.run(lambda r: r.get("t:k")) is None  # still marked down: this call starts the probe
    probe = state.pending_probe
    assert probe is not None and await probe is True
    assert (state.available, changes, resyncs) == (True, [False, True], [0])  # the restart lost the data
    assert await state.run(lambda r: r.set("t:k", "after")) is True

    server.stop()
    server.start()  # restarted between two calls: the pool's dead connection is replaced silently
    assert await state.run(lambda r: r.get("t:k")) is None  # a fresh server has no key, but it answered
    assert (state.available, state.outages, changes) == (True, 1, [False, True])

    server.stop()
    assert await state.run(lambda r: r.get("t:k")) is None
    server.start()
    assert await state.probe() is True
    assert (changes, state.outages, resyncs) == ([False, True, False, True], 2, [0, 0])
    assert "a subscriber's bug" in caplog.text
    await state.aclose()
