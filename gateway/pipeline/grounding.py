"""The gateway's use of the knowledge layer: open the store, augment requests, degrade instead of failing.

The store opens in the background (chromadb and the encoder take seconds to
load; the demo corpus is ingested on first start), so the gateway serves at
once and answers without context until knowledge is ready. Under load,
retrievals queue (micro-batched, see :mod:`retrieval.batcher`) within the
knowledge block's ``timeout_ms`` and the route's deadline instead of being
dropped. Only a missed deadline or an outage answers without context, marked
``timeout`` or ``unavailable`` in ``x-gateway-rag``, counted in
``gateway_rag_requests_total{result}`` and logged, never an error for the client.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from gateway.metrics import Metrics
from policies import ARM_NAMES, Knowledge, PolicySet
from retrieval import (
    DEMO_COLLECTION,
    AugmentConfig,
    Hit,
    KnowledgeStore,
    RetrievalError,
    RetrievalTimeout,
    SearchBatcher,
    chroma_dir,
    ensure_demo_corpus,
    ground,
    passages,
)

log = logging.getLogger("hybrid_gateway.knowledge")
RagResult = Literal["hit", "miss", "timeout", "unavailable"]


@dataclass(frozen=True)
class RagOutcome:
    """One retrieval's result and the passages it chose; ``grounded`` puts them into any arm's messages."""

    result: RagResult
    sources: list[Hit] = field(default_factory=list)
    seconds: float = 0.0  # what the retrieval added to the request, queue wait included

    def grounded(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``messages`` (an arm's own prompt) with the passages, as new messages; unchanged without passages."""
        return ground(messages, self.sources) if self.sources else messages

    def header(self) -> str:
        """``x-gateway-sources``: each cited source once, in order of first citation, percent-encoded for HTTP.

        Several passages often come from one file; the per-passage list is the body field's.
        """
        return ",".join(quote(source, safe="/._-") for source in dict.fromkeys(hit.source for hit in self.sources))

    def body_field(self) -> list[dict[str, Any]]:
        """The sources as the extra ``gateway.sources`` field of a JSON response."""
        return [{"citation": index, "source": hit.source, "chunk_id": hit.chunk_id, "score": round(hit.score, 4)}
                for index, hit in enumerate(self.sources, 1)]


def collections_of(policy: PolicySet) -> set[str]:
    return {arm.knowledge.collection for route in policy.routes.values() for name in ARM_NAMES
            if (arm := getattr(route.arms, name)) is not None and arm.knowledge is not None}


def _config(knowledge: Knowledge) -> AugmentConfig:
    return AugmentConfig(knowledge.collection, knowledge.top_k, knowledge.min_score, knowledge.max_context_tokens,
                         knowledge.filter_keys)


class KnowledgeService:
    def __init__(self, data_dir: Path, chroma_url: str | None, metrics: Metrics) -> None:
        self._data_dir = data_dir
        self._chroma_url = chroma_url
        self._metrics = metrics
        self.store: KnowledgeStore | None = None
        self._searches: SearchBatcher | None = None  # the store's retrieval queue, on this worker's loop
        self.problem: str | None = "loading"
        self.reached = False  # whether the store has answered at least once since start
        self._collections: set[str] = set()

    def _open(self, seed_demo: bool) -> KnowledgeStore:
        store = KnowledgeStore.open(self._data_dir, self._chroma_url)
        store.encoder.embed(["warm up"])  # load the model now, not on the first request
        if seed_demo:
            # Several workers may start at once on one embedded directory: one of them ingests.
            self._data_dir.mkdir(parents=True, exist_ok=True)
            with open(self._data_dir / ".demo-corpus.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                report = ensure_demo_corpus(store)
            if report is not None:
                log.info("demo knowledge ingested into %s: %s", DEMO_COLLECTION, report)
        for collection in sorted(self._collections):
            # Reach Chroma now: the first request must not spend its retrieval deadline on chromadb's import
            # and connection (a 2 s first contact would make it a timeout), and a store that cannot be
            # reached is an outage, retried here, not a store that is open.
            store.count(collection)
        return store

    async def start(self, policy: PolicySet, first_retry_s: float = 1.0, max_retry_s: float = 30.0) -> None:
        """Open the store in a thread, retrying with backoff until it opens; degraded meanwhile.

        A Chroma server often starts after the gateway (a fresh ``helm install`` starts both
        at once): giving up after one try would leave the replica without knowledge, and
        unready, until someone restarted it.
        """
        self._collections = collections_of(policy)
        if not self._collections:
            self.problem = None
            return
        pause = first_retry_s
        while True:
            try:
                self.store = await asyncio.to_thread(self._open, DEMO_COLLECTION in self._collections)
            except (RetrievalError, OSError) as exc:
                self.problem = f"unavailable: {exc}"
                log.warning("knowledge store not available, answering without context; retrying in %g s: %s",
                            pause, exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, max_retry_s)
                continue
            self._searches = SearchBatcher(self.store)
            self.problem = None
            log.info("knowledge store open: %s", self._chroma_url or chroma_dir(self._data_dir))
            return

    async def readiness(self) -> str | None:
        """None when the store answers a count of one routed collection; else what is wrong."""
        if self.store is None or self.problem is not None or not self._collections:
            return self.problem
        store, collection = self.store, min(self._collections)
        try:
            await asyncio.to_thread(store.count, collection)
        except RetrievalError as exc:
            return f"unavailable: {exc}"
        self.reached = True
        return None

    async def augment(self, route: str, knowledge: Knowledge, messages: list[dict[str, Any]],
                      metadata: Mapping[str, Any] | None, deadline: float) -> RagOutcome:
        """Retrieve within the knowledge block's ``timeout_ms`` and the route's ``deadline`` (time.monotonic())."""
        started = time.perf_counter()
        budget = min(time.monotonic() + knowledge.timeout_ms / 1000, deadline)
        outcome = replace(await self._augment(route, knowledge, messages, metadata, budget),
                          seconds=time.perf_counter() - started)
        self._metrics.rag_requests.labels(route, outcome.result).inc()
        if outcome.result != "unavailable":
            self._metrics.rag_duration.labels(route).observe(outcome.seconds)
        return outcome

    async def _augment(self, route: str, knowledge: Knowledge, messages: list[dict[str, Any]],
                       metadata: Mapping[str, Any] | None, deadline: float) -> RagOutcome:
        if self._searches is None:
            return RagOutcome("unavailable")
        try:
            chosen = await passages(self._searches, messages, _config(knowledge), metadata, deadline=deadline)
        except RetrievalTimeout as exc:
            log.warning("retrieval for route %s missed its deadline, answering without context: %s", route, exc)
            return RagOutcome("timeout")
        except RetrievalError as exc:
            log.warning("retrieval for route %s failed, answering without context: %s", route, exc)
            return RagOutcome("unavailable")
        self.reached = True
        return RagOutcome("hit", chosen) if chosen else RagOutcome("miss")
