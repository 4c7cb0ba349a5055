"""Outcomes and feedback: both stores, several readers, and the journal replayed after an outage."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from policies.experiments.outcomes import (
    MAX_COMMENT_CHARS,
    Feedback,
    FeedbackExists,
    LocalOutcomes,
    Outcome,
    OutcomeStore,
    OutcomesUnavailable,
    SharedOutcomes,
    outcome_store,
    token_digest,
)
from policies.runtime.shared_state import SharedState
from tests.support.process import ROOT
from tests.support.redis_server import RedisServer, delete_prefix, require_shared_redis, unique_prefix

StoreFactory = Callable[[], OutcomeStore]


def outcome(request_id: str, experiment: str = "exp", variant: str = "a", at: float = 1000.0) -> Outcome:
    return Outcome(request_id=request_id, experiment=experiment, variant=variant, route="chat", arm="prompted",
                   target="big", status=200, latency_ms=12.5, cost_usd=0.0012, crossed=False, keyed=True, at=at)


def feedback(request_id: str, score: float, at: float, comment: str | None = None) -> Feedback:
    return Feedback(request_id=request_id, score=score, success=score > 0.5, comment=comment, at=at)


@pytest.fixture(params=["local", "shared"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Makes store objects over one backing (directory or Redis prefix), as separate replicas would."""
    if request.param == "local":
        yield lambda: LocalOutcomes(tmp_path)
        return
    url, prefix = require_shared_redis(), unique_prefix()
    states: list[SharedState] = []

    def make() -> OutcomeStore:
        states.append(SharedState.connect(url, prefix=prefix))
        return SharedOutcomes(states[-1], LocalOutcomes(tmp_path / f"replica-{len(states)}"))

    yield make
    assert all(state.failures == 0 for state in states)
    for state in states:
        await state.aclose()
    await delete_prefix(url, prefix)


async def test_record_feedback_and_rows(stores: StoreFactory) -> None:
    store = stores()
    await store.record(outcome("r1", at=1000.0))
    await store.record(outcome("r2", variant="b", at=1001.0))
    await store.record(outcome("r3", experiment="other", at=1002.0))
    assert await store.add_feedback(feedback("r1", 0.9, at=2000.0)) == outcome("r1", at=1000.0)
    assert await store.add_feedback(feedback("r1", 0.1, at=1500.0)) is not None  # older: kept out
    assert await store.add_feedback(feedback("r2", 0.2, at=2001.0)) is not None
    assert await store.add_feedback(feedback("r2", 0.7, at=2002.0, comment="x" * 5000)) is not None

    rows = await store.rows("exp")
    assert [(o.request_id, f.score if f else None) for o, f in rows] == [("r1", 0.9), ("r2", 0.7)]
    assert rows[1][1] is not None and rows[1][1].comment == "x" * MAX_COMMENT_CHARS
    assert [o.request_id for o, f in await store.rows("other")] == ["r3"]
    assert await store.rows("missing") == []


async def test_who_may_judge_a_request_is_kept_by_every_store(stores: StoreFactory) -> None:
    owned = dataclasses.replace(outcome("r1"), owner="a" * 16, token=token_digest("t0ken"))
    await stores().record(owned)
    await stores().record(outcome("legacy"))  # as recorded before owners and tokens existed
    kept, legacy = await stores().outcome("r1"), await stores().outcome("legacy")
    assert kept is not None and kept == owned and legacy is not None
    assert kept.answers_to("a" * 16, None) and kept.answers_to(None, "t0ken") and kept.answers_to("b" * 16, "t0ken")
    assert not any(kept.answers_to(owner, token) for owner, token in (("b" * 16, None), (None, "t0ke"), (None, None),
                                                                      ("b" * 16, token_digest("t0ken"))))
    assert not legacy.answers_to(None, "t0ken") and not legacy.answers_to("a" * 16, None)


async def test_unknown_request_id(stores: StoreFactory) -> None:
    store = stores()
    assert await store.add_feedback(feedback("nope", 1.0, at=1.0)) is None
    await store.record(outcome("r1"))
    assert [f for _, f in await store.rows("exp")] == [None]


async def test_another_store_object_sees_the_data(stores: StoreFactory) -> None:
    first, second = stores(), stores()
    assert await second.rows("exp") == []  # loaded before the writes below
    await first.record(outcome("r1"))
    assert await second.add_feedback(feedback("r1", 1.0, at=5.0)) == outcome("r1")
    rows = await first.rows("exp")
    assert rows == [(outcome("r1"), feedback("r1", 1.0, at=5.0))]
    assert await second.rows("exp") == rows


async def test_another_process_sees_the_journal(tmp_path: Path) -> None:
    store = LocalOutcomes(tmp_path)
    await store.record(outcome("mine"))
    script = (
        "import asyncio, sys; from pathlib import Path\n"
        "from policies.experiments.outcomes import LocalOutcomes, Outcome\n"
        "s = LocalOutcomes(Path(sys.argv[1]))\n"
        "o = Outcome('theirs', 'exp', 'b', 'chat', 'fine_tuned', 'small', 502, 3.0, None, True, False, 1001.0)\n"
        "asyncio.run(s.record(o))\n"
        "print(len(asyncio.run(s.rows('exp'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=30, check=True)
    assert done.stdout.strip() == "2"
    with (tmp_path / "outcomes.jsonl").open("a") as journal:
        journal.write('{"kind": "outcome", "data": {"request_id": "half-writ')  # a writer mid-line
    rows = await store.rows("exp")
    assert [(o.request_id, o.status, o.cost_usd, o.crossed) for o, _ in rows] == [
        ("mine", 200, 0.0012, False), ("theirs", 502, None, True)]


async def test_store_choice(tmp_path: Path) -> None:
    assert isinstance(outcome_store(SharedState.connect(None), tmp_path), LocalOutcomes)
    remote = SharedState.connect("redis://127.0.0.1:1/0")
    assert isinstance(outcome_store(remote, tmp_path), SharedOutcomes)
    await remote.aclose()


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as running:
        yield running


async def test_outage_journals_locally_and_replays_exactly_once(server: RedisServer, tmp_path: Path) -> None:
    changes: list[bool] = []
    state = SharedState.connect(server.url, prefix="o:", on_change=changes.append)
    store = SharedOutcomes(state, LocalOutcomes(tmp_path))
    await store.record(outcome("before"))

    server.stop()
    await store.record(outcome("during", at=1001.0))
    assert await store.add_feedback(feedback("during", 0.8, at=1100.0)) == outcome("during", at=1001.0)
    with pytest.raises(OutcomesUnavailable):  # in Redis, which is down: not a 404
        await store.add_feedback(feedback("before", 0.8, at=1100.0))
    assert [o.request_id for o, _ in await store.rows("exp")] == ["during"]  # the local view
    assert (state.available, state.failures, changes) == (False, 1, [False])

    server.start()  # empty: it kept nothing of "before"
    assert await state.probe() is True  # the resync replays the journal
    assert changes == [False, True]
    assert await state.run(lambda r: r.zrange("o:experiment:exp:outcomes", 0, -1)) == ["during"]
    assert await store.rows("exp") == [(outcome("during", at=1001.0), feedback("during", 0.8, at=1100.0))]
    assert await store.replay() == 0

    # Nothing is replayed twice: not after a second outage, nor by a restarted gateway on the directory.
    await state.run(lambda r: r.delete("o:outcome:during"))
    server.stop()
    assert await state.run(lambda r: r.ping()) is None
    server.start()
    assert await state.probe() is True
    assert changes == [False, True, False, True]
    assert await state.run(lambda r: r.exists("o:outcome:during")) == 0
    assert await SharedOutcomes(state, LocalOutcomes(tmp_path)).replay() == 0
    await state.aclose()


async def test_journal_left_by_a_stopped_gateway_is_replayed_on_next_read(
        server: RedisServer, tmp_path: Path) -> None:
    state = SharedState.connect(server.url, prefix="o:")
    server.stop()
    await SharedOutcomes(state, LocalOutcomes(tmp_path)).record(outcome("orphan"))
    await state.aclose()

    server.start()
    state = SharedState.connect(server.url, prefix="o:")
    store = SharedOutcomes(state, LocalOutcomes(tmp_path))
    assert await store.add_feedback(feedback("orphan", 0.3, at=2000.0)) == outcome("orphan")
    assert await store.rows("exp") == [(outcome("orphan"), feedback("orphan", 0.3, at=2000.0))]
    assert state.failures == 0
    await state.aclose()


async def test_a_repeated_feedback_is_refused_unless_it_replaces(stores: StoreFactory) -> None:
    store = stores()
    await store.record(outcome("r1"))
    assert await store.outcome("r1") == outcome("r1") and await store.outcome("nope") is None
    await store.add_feedback(feedback("r1", 0.9, at=2000.0), replace=False)
    with pytest.raises(FeedbackExists) as refused:
        await stores().add_feedback(feedback("r1", 0.1, at=2001.0), replace=False)  # through another replica
    assert refused.value.previous.score == 0.9
    assert [row[1].score for row in await store.rows("exp") if row[1]] == [0.9]
    await store.add_feedback(feedback("r1", 0.2, at=2002.0), replace=True)
    assert [row[1].score for row in await store.rows("exp") if row[1]] == [0.2]
