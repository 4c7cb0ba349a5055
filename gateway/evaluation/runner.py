"""Replay a test set through a gateway's arms: bounded concurrency, retries, a resumable journal.

The arms are the route's ``prompted`` and ``fine_tuned`` (each forced), and on a
route whose ``strategy`` is not ``route`` also ``strategy``: the route as it
serves clients, which journals what the strategy did (its outcome header
``x-gateway-<strategy>``, the acceptor that rejected, every call it paid for).

Every (example, arm) pair not yet in the journal is called once through
:func:`gateway.evaluation.call.ask`, at most ``concurrency`` at a time, and
its outcome appended to the journal as soon as it finishes, so an interrupted
run resumes where it stopped and a finished call is never paid for twice.
Calls that fail for a reason a later attempt may cure are retried with
exponential backoff (tenacity); an example that still fails is journaled as an
error and counts against its arm's error rate. A misconfiguration that would
fail every call (arm override not allowed, unknown route, refused key) stops
the run instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from gateway.evaluation.call import FATAL_CODES, Answer, CallFailed, ask
from gateway.evaluation.dataset import Example, ResponseLog, key
from gateway.evaluation.progress import Progress
from gateway.evaluation.vocabulary import STRATEGY


class EvaluationAborted(RuntimeError):
    """Every call would fail the same way; the message says how to fix the set-up."""


@dataclass(frozen=True)
class RunOptions:
    url: str
    route: str
    arms: tuple[str, ...]
    """Arm names to force, and :data:`STRATEGY` for the route unforced."""
    strategy: str = "route"
    """The route's strategy; names the outcome headers of its unforced calls."""
    concurrency: int = 4
    attempts: int = 3
    """Attempts per call in total, the first included."""
    timeout_s: float = 120.0
    api_key: str | None = None
    backoff_s: float = 0.5
    progress: bool = True


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, CallFailed) and exc.retryable


def _strategy(answer: Answer, strategy: str) -> dict[str, Any]:
    """What the route's strategy did for one unforced call; ``outcome`` None: it did not run (e.g. the classifier
    sent the request straight to the prompted arm)."""
    headers = answer.headers
    return {"outcome": headers.get(f"x-gateway-{strategy}"),
            "rejected_by": headers.get(f"x-gateway-{strategy}-rejected"),
            "calls": [asdict(call) for call in answer.calls]}


def _record(example: Example, arm: str, tries: int, answer: Answer | None,
            failure: CallFailed | None, strategy: str) -> dict[str, Any]:
    base: dict[str, Any] = {"key": key(example.index, arm), "example": example.index, "id": example.id,
                            "arm": arm, "fingerprint": example.fingerprint, "tries": tries,
                            "ok": answer is not None}
    if failure is not None:
        return {**base, "status": failure.status, "code": failure.code, "error": str(failure)}
    assert answer is not None
    headers = answer.headers
    return {**base, "status": 200, "answer": answer.text, "served_arm": headers.get("x-gateway-arm"),
            "target": headers.get("x-gateway-target"), "request_id": headers.get("x-request-id"),
            "fallback": headers.get("x-gateway-fallback"), "rag": headers.get("x-gateway-rag"),
            "latency_s": answer.latency_s, "ttft_s": answer.ttft_s, "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens, "cost_usd": answer.cost_usd,
            **(_strategy(answer, strategy) if arm == STRATEGY else {})}


async def _one(client: httpx.AsyncClient, options: RunOptions, example: Example, arm: str) -> dict[str, Any]:
    retrying = AsyncRetrying(stop=stop_after_attempt(options.attempts), reraise=True,
                             retry=retry_if_exception(_retryable),
                             wait=wait_exponential_jitter(initial=options.backoff_s, max=10, jitter=options.backoff_s))
    tries = 0
    try:
        async for attempt in retrying:
            with attempt:
                tries += 1
                answer = await ask(client, options.url, options.route, None if arm == STRATEGY else arm,
                                   example.messages, f"eval-{example.fingerprint[:8]}-{example.index}-{arm}")
    except CallFailed as failure:
        if failure.code in FATAL_CODES:
            raise EvaluationAborted(f"{options.route}/{arm}: {failure}") from failure
        return _record(example, arm, tries, None, failure, options.strategy)
    return _record(example, arm, tries, answer, None, options.strategy)


async def _run(options: RunOptions, pending: Sequence[tuple[Example, str]], log: ResponseLog,
               progress: Progress) -> None:
    gate = asyncio.Semaphore(options.concurrency)
    headers = {"authorization": f"Bearer {options.api_key}"} if options.api_key else {}
    limits = httpx.Limits(max_connections=options.concurrency)
    async with httpx.AsyncClient(timeout=options.timeout_s, headers=headers, limits=limits) as client:
        async def bounded(example: Example, arm: str) -> None:
            async with gate:
                record = await _one(client, options, example, arm)
            log.append(record)
            progress.advance(record["ok"])

        tasks = [asyncio.create_task(bounded(example, arm)) for example, arm in pending]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def replay(options: RunOptions, examples: Sequence[Example], log: ResponseLog) -> int:
    """Call every (example, arm) the journal lacks, in example order; returns how many were called."""
    pending = [(example, arm) for example in examples for arm in options.arms
               if not log.done(example.index, arm)]
    total = len(examples) * len(options.arms)
    progress = Progress(total, total - len(pending), enabled=options.progress)
    try:
        asyncio.run(_run(options, pending, log, progress))
    finally:
        progress.close()
    return len(pending)
