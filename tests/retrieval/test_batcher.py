"""The search batcher: concurrent searches share one encoder call, queue instead of failing, and end by their deadline.

The store is real (embedded Chroma with the demo corpus, the MiniLM encoder);
the encoder is wrapped so a test can hold its calls at a gate, which is a
store slower than any budget without sleeping, and can count its calls.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest

from retrieval import (
    DEMO_COLLECTION,
    KnowledgeStore,
    MiniLMEncoder,
    RetrievalTimeout,
    Search,
    SearchBatcher,
    ensure_demo_corpus,
)

QUESTIONS = ["How many API requests per minute does the Growth plan allow?",
             "What is the refund window for annual plans?", "Where is the head office?",
             "Which carriers do you work with?", "How do I change my billing date?",
             "What does the SLA promise for uptime?", "Can I export my shipment data?",
             "How are invoices disputed?", "Is there a free trial?", "What happens when a delivery is late?"]


class GatedEncoder:
    """The real MiniLM encoder behind a gate that tests can close; records the size of every call."""

    def __init__(self, inner: MiniLMEncoder) -> None:
        self.inner, self.model_id, self.dim = inner, inner.model_id, inner.dim
        self.gate, self.entered = threading.Event(), threading.Event()
        self.gate.set()
        self.calls: list[int] = []

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        self.entered.set()
        self.gate.wait()
        return self.inner.embed(texts)


@pytest.fixture(scope="module")
def store_and_encoder(tmp_path_factory: pytest.TempPathFactory) -> tuple[KnowledgeStore, GatedEncoder]:
    encoder = GatedEncoder(MiniLMEncoder())
    store = KnowledgeStore.embedded(tmp_path_factory.mktemp("chroma"), encoder)
    ensure_demo_corpus(store)
    return store, encoder


@pytest.fixture
async def gated(store_and_encoder: tuple[KnowledgeStore, GatedEncoder]) -> AsyncIterator[GatedEncoder]:
    """The encoder with its gate closed and its call log empty; async so the teardown opens the gate (ending
    stuck worker threads) before the event loop waits for its executor."""
    encoder = store_and_encoder[1]
    encoder.calls.clear()
    encoder.entered.clear()
    encoder.gate.clear()
    yield encoder
    encoder.gate.set()


def later(seconds: float) -> float:
    return time.monotonic() + seconds


async def test_concurrent_searches_share_one_encoder_call_and_each_gets_its_own_hits(
        store_and_encoder: tuple[KnowledgeStore, GatedEncoder], gated: GatedEncoder) -> None:
    store = store_and_encoder[0]
    batcher = SearchBatcher(store, workers=1)
    first = asyncio.create_task(batcher.search(Search(DEMO_COLLECTION, QUESTIONS[0], 3), later(60)))
    await asyncio.to_thread(gated.entered.wait, 30)  # the only worker now holds the first search at the gate
    # Searches of one batch may differ in k and filter: they are grouped into Chroma queries and cut per search.
    searches = [Search(DEMO_COLLECTION, q, 1 + i % 4) for i, q in enumerate(QUESTIONS[1:])]
    searches.append(Search(DEMO_COLLECTION, QUESTIONS[1], 2, {"source": "sla.md"}))
    waiting = [asyncio.create_task(batcher.search(s, later(60))) for s in searches]

    async def open_gate() -> None:
        gated.gate.set()

    # Tasks take their first step in creation order, so every search above is queued when the gate opens.
    await asyncio.create_task(open_gate())
    answers = await asyncio.gather(first, *waiting)

    assert gated.calls == [1, len(searches)]  # 11 searches, 2 encoder calls
    expected = [store.query(DEMO_COLLECTION, QUESTIONS[0], 3)] + [store.query(s.collection, s.text, s.k, s.where)
                                                                  for s in searches]
    assert [[hit.chunk_id for hit in hits] for hits in answers] == [[hit.chunk_id for hit in hits]
                                                                      for hits in expected]
    assert [len(hits) for hits in answers[1:-1]] == [s.k for s in searches[:-1]]
    assert answers[-1] and {hit.source for hit in answers[-1]} == {"sla.md"}


async def test_a_queued_search_gives_up_at_its_deadline_and_never_reaches_the_stuck_store(
        store_and_encoder: tuple[KnowledgeStore, GatedEncoder], gated: GatedEncoder) -> None:
    store = store_and_encoder[0]
    batcher = SearchBatcher(store, workers=1)
    stuck = asyncio.create_task(batcher.search(Search(DEMO_COLLECTION, QUESTIONS[0]), later(0.3)))
    await asyncio.to_thread(gated.entered.wait, 30)

    deadline = later(0.2)
    with pytest.raises(RetrievalTimeout, match="no retrieval answer within"):
        await batcher.search(Search(DEMO_COLLECTION, QUESTIONS[1]), deadline)
    assert time.monotonic() >= deadline  # it waited its turn until the deadline...
    assert not gated.gate.is_set()  # ...and not a moment for the stuck store beyond it
    with pytest.raises(RetrievalTimeout):
        await stuck
    with pytest.raises(RetrievalTimeout, match="no time left"):
        await batcher.search(Search(DEMO_COLLECTION, QUESTIONS[2]), time.monotonic())

    gated.gate.set()
    fresh = await batcher.search(Search(DEMO_COLLECTION, QUESTIONS[3], 2), later(60))
    assert gated.calls == [1, 1]  # the stuck search and the fresh one: the abandoned one was never encoded
    assert [h.chunk_id for h in fresh] == [h.chunk_id for h in store.query(DEMO_COLLECTION, QUESTIONS[3], 2)]


async def test_a_hung_store_holds_at_most_workers_threads_however_many_searches_arrive(
        store_and_encoder: tuple[KnowledgeStore, GatedEncoder], gated: GatedEncoder) -> None:
    batcher = SearchBatcher(store_and_encoder[0], workers=2, max_batch=4)
    for round_ in range(3):
        results = await asyncio.gather(*(batcher.search(Search(DEMO_COLLECTION, f"{q} ({round_})"), later(0.2))
                                         for q in QUESTIONS), return_exceptions=True)
        assert all(isinstance(r, RetrievalTimeout) for r in results), results
    assert len(gated.calls) == 2 and all(size <= 4 for size in gated.calls)


async def test_a_full_queue_sheds_at_once(store_and_encoder: tuple[KnowledgeStore, GatedEncoder],
                                          gated: GatedEncoder) -> None:
    batcher = SearchBatcher(store_and_encoder[0], workers=1, max_waiting=2)
    running = asyncio.create_task(batcher.search(Search(DEMO_COLLECTION, QUESTIONS[0]), later(60)))
    await asyncio.to_thread(gated.entered.wait, 30)  # the worker is busy
    queued = [asyncio.create_task(batcher.search(Search(DEMO_COLLECTION, q), later(60))) for q in QUESTIONS[1:3]]

    async def one_more() -> None:  # runs after both searches above have queued (tasks start in order)
        with pytest.raises(RetrievalTimeout, match="2 retrievals already waiting"):
            await batcher.search(Search(DEMO_COLLECTION, QUESTIONS[3]), later(60))

    await asyncio.create_task(one_more())
    gated.gate.set()
    assert all(await asyncio.gather(running, *queued))
