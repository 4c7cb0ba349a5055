"""Micro-batched searches: concurrent queries share one encoder call and one Chroma query, each within its deadline.

Why: a thread per retrieval piles up behind a slow store, and a hard cap on
such threads drops requests under ordinary load (at concurrency 32 a third
to a half of the embedded default's requests went out without context). Here
callers wait in an async queue instead; ``workers`` worker threads each take
whatever is waiting (up to ``max_batch``) and run it as one
:meth:`KnowledgeStore.search_many`. While the workers are busy the queue
fills, so batches grow with the load, which is where a CPU encoder gains
throughput, and a lone request at low load goes at once. There is no
collection window: it would delay every lone request, and under load the busy
workers already make the batches.

Deadlines: a caller waits at most until its deadline and then gets
:class:`RetrievalTimeout`; a search whose caller has given up is dropped before
it reaches a worker. A batch blocked on a hung Chroma holds one of the
``workers`` threads of the batcher's own, never more: later callers wait in the
queue (at most ``max_waiting`` of them) and time out at their own deadlines.
One batcher serves one event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from retrieval.errors import RetrievalError, RetrievalTimeout
from retrieval.store import Hit, KnowledgeStore, Search


@dataclass(frozen=True)
class _Waiting:
    search: Search
    deadline: float  # time.monotonic()
    answer: asyncio.Future[list[Hit]]

    def abandoned(self, now: float) -> bool:
        return self.answer.done() or now >= self.deadline


class SearchBatcher:
    """Queue searches, run them in batches on a bounded number of threads, answer each caller by its deadline."""

    def __init__(self, store: KnowledgeStore, *, workers: int = 2, max_batch: int = 16,
                 max_waiting: int = 1024) -> None:
        """``workers`` 2 suits the 2-core target (one batch encodes while the other searches);
        ``max_batch`` 16 is past the encoder's gain (6.0 ms per query in batches of 8 against 7.1 alone,
        no better at 32, where padding to the longest text costs more)."""
        if workers < 1 or max_batch < 1 or max_waiting < 1:
            raise ValueError("need workers, max_batch and max_waiting >= 1")
        self.store = store
        # Its own threads: the loop's default executor also runs the classifier's encoder calls, and a batch
        # queued behind a burst of those would spend its callers' deadlines waiting for unrelated work.
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="retrieval")
        self._idle = workers
        self._max_batch = max_batch
        self._max_waiting = max_waiting
        self._waiting: deque[_Waiting] = deque()
        self._scheduled = False

    async def search(self, search: Search, deadline: float) -> list[Hit]:
        """The search's hits, or RetrievalTimeout once ``deadline`` (``time.monotonic()``) has passed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RetrievalTimeout("no time left for retrieval before the deadline")
        if len(self._waiting) >= self._max_waiting:
            self._prune()
            if len(self._waiting) >= self._max_waiting:
                raise RetrievalTimeout(f"{len(self._waiting)} retrievals already waiting; shed to keep deadlines")
        loop = asyncio.get_running_loop()
        waiting = _Waiting(search, deadline, loop.create_future())
        self._waiting.append(waiting)
        self._schedule(loop)
        try:
            return await asyncio.wait_for(waiting.answer, remaining)
        except TimeoutError as exc:
            raise RetrievalTimeout(
                f"no retrieval answer within {remaining * 1000:.0f} ms ({len(self._waiting)} waiting)"
            ) from exc

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._scheduled or not self._idle or not self._waiting:
            return
        self._scheduled = True
        loop.call_soon(self._dispatch, loop)  # after the searches queued in this turn of the loop

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start a batch on each idle worker while searches wait (runs on the loop)."""
        self._scheduled = False
        while self._idle:
            batch = self._take()
            if not batch:
                return
            self._idle -= 1
            running = loop.run_in_executor(self._executor, self.store.search_many, [w.search for w in batch])
            running.add_done_callback(partial(self._finished, loop, batch))

    def _take(self) -> list[_Waiting]:
        """Up to ``max_batch`` waiting searches, oldest first, skipping those whose caller gave up."""
        now = time.monotonic()
        batch: list[_Waiting] = []
        while self._waiting and len(batch) < self._max_batch:
            waiting = self._waiting.popleft()
            if not waiting.abandoned(now):
                batch.append(waiting)
        return batch

    def _prune(self) -> None:
        now = time.monotonic()
        self._waiting = deque(w for w in self._waiting if not w.abandoned(now))

    def _finished(self, loop: asyncio.AbstractEventLoop, batch: list[_Waiting],
                  running: asyncio.Future[list[list[Hit] | RetrievalError]]) -> None:
        """Answer every caller still waiting, then give the worker the next batch."""
        self._idle += 1
        failure = running.exception() if not running.cancelled() else RetrievalTimeout("retrieval cancelled")
        answers: Sequence[list[Hit] | BaseException] = (
            [failure] * len(batch) if failure is not None else running.result()
        )
        for waiting, answer in zip(batch, answers, strict=True):
            if waiting.answer.done():
                continue
            if isinstance(answer, BaseException):
                waiting.answer.set_exception(answer)
            else:
                waiting.answer.set_result(answer)
        self._schedule(loop)
