"""Replicas merge their live score sketches through real Redis, and fall back to their own when it is gone."""

from __future__ import annotations

from pathlib import Path

from gateway.metrics import Metrics
from gateway.pipeline.arm_choice import ArmChooser
from gateway.pipeline.score_sharing import ScoreSharing
from policies import Classifier, SharedState
from routes import ScoreSketch
from tests.support.clock import FakeClock
from tests.support.redis_server import RedisServer
from tests.support.support_traffic import clustered_scores

CONFIG = Classifier(model="fast", strong_share=0.3, calibration={"window_decisions": 1_600})


class Replica:
    """One process's chooser and sharing task, on a fake clock, without HTTP."""

    def __init__(self, shared: SharedState, clock: FakeClock) -> None:
        self.chooser = ArmChooser(Path("."), Metrics(), clock=clock)
        self.sharing = ScoreSharing(shared, self.chooser)

    @property
    def sketch(self) -> ScoreSketch:
        return self.chooser.rule("support", CONFIG).sketch

    def see(self, scores: list[float]) -> None:
        for score in scores:
            self.sketch.record(score, score > 0.53)


async def test_two_replicas_decide_on_one_merged_estimate(shared_redis: tuple[str, str]) -> None:
    url, prefix = shared_redis
    clock = FakeClock()
    states = [SharedState.connect(url, prefix=prefix) for _ in range(2)]
    first, second = (Replica(state, clock) for state in states)
    first.see(clustered_scores(700, seed=1))
    second.see(clustered_scores(300, seed=2, centre=0.56))
    await first.sharing.sync()
    await second.sharing.sync()
    await first.sharing.sync()
    assert first.sketch.stats().decisions == second.sketch.stats().decisions == 1_000
    assert first.sketch.stats().prompted == second.sketch.stats().prompted
    assert first.sketch.cut(0.3) == second.sketch.cut(0.3)
    assert first.chooser.scope == second.chooser.scope == "cluster"

    # once newer decisions fill the window, a replica deletes its old slices from Redis too
    first.see(clustered_scores(4_000, seed=3))
    await first.sharing.sync()
    await second.sharing.sync()
    assert 1_600 <= second.sketch.stats().decisions <= 1_600 + 100
    keys = await states[0].run(lambda client: client.keys(prefix + "calibration:*"))
    assert keys is not None and len(keys) <= 2 * 18 + 1  # ~17 slices a replica, and the index
    for state in states:
        await state.aclose()


async def test_without_redis_each_replica_keeps_its_own_and_catches_up_after_an_outage() -> None:
    clock = FakeClock()
    with RedisServer() as server:
        states = [SharedState.connect(server.url, prefix="cal:", clock=clock) for _ in range(2)]
        first, second = (Replica(state, clock) for state in states)
        first.see(clustered_scores(500, seed=4))
        second.see(clustered_scores(200, seed=5))
        for replica in (first, second, first):
            await replica.sharing.sync()
        assert first.sketch.stats().decisions == 700

        server.stop()
        second.see(clustered_scores(100, seed=6))
        await first.sharing.sync()
        assert (first.chooser.scope, first.sketch.stats().decisions) == ("process", 500)  # its own only
        assert states[0].outages == 1 and not states[0].available  # logged and counted by SharedState

        server.start()  # a fresh, empty Redis: each replica publishes all of its slices again,
        clock.now += 2.0  # the second too, which never saw the outage, once it misses its own slices there
        for state in states:
            assert await state.probe()
        for replica in (first, second, second, first):
            await replica.sharing.sync()
        assert first.sketch.stats().decisions == second.sketch.stats().decisions == 800
        assert first.chooser.scope == "cluster"
        for state in states:
            await state.aclose()

