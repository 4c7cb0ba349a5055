"""Run a request's upstream call through retries, circuit breakers and the fallback chain.

Each target of the chain is tried with its own retry policy (tenacity:
exponential backoff with full jitter, the upstream's ``Retry-After`` honoured up
to a cap); an open breaker skips the target at once; a failure whose trigger the
arm's fallback lists moves to the next plan. Everything stays inside the
route's deadline: a retry whose wait would not leave time for an attempt is
not taken (counted in ``gateway_retries_skipped``), so the chain moves to its
fallback at once instead of sleeping into a 504. ``run`` returns one
value, ``Answered`` or ``Exhausted``, with the ``Effort`` it took (attempts,
fallbacks, upstream time), so the request is accounted once, whatever happened
on the way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception
from tenacity.wait import wait_random_exponential

from gateway.errors import CircuitOpen, GatewayError, RateLimited, UpstreamTimeout
from gateway.metrics import Metrics
from gateway.pipeline.plan import Plan
from policies import Breaker, BreakerBoard, Retry

Result = TypeVar("Result")
Call = Callable[[Plan], Awaitable[Result]]
_BREAKER_FAILURES = frozenset({"timeout", "connection", "server_error"})
_MIN_ATTEMPT_S = 0.05


Prepare = Callable[[Plan], Awaitable[Plan]]


async def _as_is(plan: Plan) -> Plan:
    return plan


_fill = object.__setattr__  # as gateway.accounting.completion does: one __dict__ write, not one setattr per field


@dataclass(frozen=True, init=False)
class Effort:
    """What a request's attempts took, whether they ended in an answer or not."""

    attempts: int
    fallbacks: tuple[str, ...]  # "from>to:trigger", in the order taken
    upstream_s: float  # time spent in calls, every attempt included

    def __init__(self, attempts: int, fallbacks: tuple[str, ...], upstream_s: float) -> None:
        _fill(self, "__dict__", {"attempts": attempts, "fallbacks": fallbacks, "upstream_s": upstream_s})

    @property
    def fallback(self) -> str:
        """As ``x-gateway-fallback`` and the access log show it."""
        return ",".join(self.fallbacks)


@dataclass(frozen=True, init=False)
class Answered(Generic[Result]):
    """``plan`` (the one that answered; after a fallback, not the first) gave ``result``."""

    plan: Plan
    result: Result
    effort: Effort

    def __init__(self, plan: Plan, result: Result, effort: Effort) -> None:
        _fill(self, "__dict__", {"plan": plan, "result": result, "effort": effort})


@dataclass(frozen=True, init=False)
class Exhausted:
    """Nothing answered: ``error`` ended the chain at ``plan``, the last plan tried."""

    plan: Plan
    error: GatewayError
    effort: Effort

    def __init__(self, plan: Plan, error: GatewayError, effort: Effort) -> None:
        _fill(self, "__dict__", {"plan": plan, "error": error, "effort": effort})


class _Tally:
    """What one ``run`` counts as it goes; only ``run`` sees it, and returns it as an ``Effort``."""

    __slots__ = ("attempts", "fallbacks", "upstream_s")

    def __init__(self) -> None:
        self.attempts = 0
        self.fallbacks: list[str] = []
        self.upstream_s = 0.0

    def effort(self) -> Effort:
        return Effort(self.attempts, tuple(self.fallbacks), self.upstream_s)


class _Waiter:
    """Backoff with full jitter, or the upstream's Retry-After when it gave one (capped)."""

    def __init__(self, retry: Retry) -> None:
        self._jitter = wait_random_exponential(multiplier=retry.backoff_initial_ms / 1000,
                                               max=retry.backoff_max_ms / 1000)
        self._cap = retry.max_retry_after_s

    def __call__(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RateLimited) and error.retry_after_s is not None:
            return min(error.retry_after_s, self._cap)
        return float(self._jitter(state))


def _bounded(plan: Plan, remaining_s: float) -> Plan:
    """The plan with its target's timeout cut to what is left of the deadline."""
    if remaining_s >= plan.target.timeout_s:
        return plan
    return replace(plan, target=plan.target.model_copy(update={"timeout_s": max(remaining_s, _MIN_ATTEMPT_S)}))


def _reason(state: RetryCallState) -> str:
    error = state.outcome.exception() if state.outcome else None
    return error.trigger if isinstance(error, GatewayError) and error.trigger else "unknown"


class AttemptRunner:
    """``clock`` and ``sleep`` are injectable so tests can drive deadlines and backoffs with a fake clock."""

    def __init__(self, metrics: Metrics, breakers: BreakerBoard, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._metrics = metrics
        self._breakers = breakers
        self._clock = clock
        self._sleep = sleep

    def export_breaker_states(self) -> None:
        """Copy each target's last known breaker state into ``gateway_circuit_open``, just before a scrape.

        With Redis that is the cluster's state as this replica last read it, so every replica
        that routed to a tripped target reports it, not only the one that saw the failures.
        """
        for target, state in self._breakers.states().items():
            self._metrics.circuit_state.labels(target).set(0 if state == "closed" else 1)

    async def _note(self, plan: Plan, error: GatewayError | None) -> None:
        config = plan.target.breaker
        if config is None or (error is not None and error.trigger not in _BREAKER_FAILURES):
            return
        await self._breakers.record(plan.target_name, config, error is None)

    async def _attempt(self, call: Call[Result], plan: Plan, deadline: float, tally: _Tally) -> Result:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise UpstreamTimeout(f"the route's deadline passed before upstream {plan.target_name} answered")
        tally.attempts += 1
        started = time.perf_counter()
        try:
            result = await call(_bounded(plan, remaining))
        except GatewayError as error:
            await self._note(plan, error)
            raise
        finally:
            tally.upstream_s += time.perf_counter() - started
        if plan.target.breaker is not None:  # no coroutine to await for a target without a breaker
            await self._note(plan, None)
        return result

    async def _with_retries(self, call: Call[Result], plan: Plan, deadline: float, tally: _Tally) -> Result:
        retry = plan.target.retry

        def retryable(error: BaseException) -> bool:
            return isinstance(error, GatewayError) and error.trigger in retry.triggers

        def stop(state: RetryCallState) -> bool:
            """Out of attempts, or the wait tenacity just chose would leave no time for the next attempt."""
            if state.attempt_number >= retry.attempts:
                return True
            if deadline - self._clock() - state.upcoming_sleep > _MIN_ATTEMPT_S:
                return False
            self._metrics.retries_skipped.labels(plan.target_name, _reason(state)).inc()
            return True

        def count_retry(state: RetryCallState) -> None:
            self._metrics.retries.labels(plan.target_name, _reason(state)).inc()

        async for attempt in AsyncRetrying(stop=stop, wait=_Waiter(retry), retry=retry_if_exception(retryable),
                                           before_sleep=count_retry, sleep=self._sleep, reraise=True):
            with attempt:
                return await self._attempt(call, plan, deadline, tally)
        raise AssertionError("tenacity reraises the last error")  # pragma: no cover

    async def run(self, call: Call[Result], first: Plan, rest: Iterator[Plan], deadline: float | None = None,
                  prepare: Prepare = _as_is) -> Answered[Result] | Exhausted:
        """Try ``first``, then each plan of ``rest`` its fallback allows, until one answers or the chain ends.

        ``deadline`` (on this runner's clock) is the request's own when work before the first
        attempt, such as retrieval, already spent part of it; by default the route's starts now.
        ``prepare`` readies each plan of ``rest`` before its first attempt (grounding), outside
        the upstream time.
        """
        deadline = self._clock() + first.deadline_s if deadline is None else deadline
        tally = _Tally()
        plan = first
        while True:
            try:
                breaker: Breaker | None = plan.target.breaker
                if breaker is not None and not await self._breakers.allow(plan.target_name, breaker):
                    raise CircuitOpen(f"the circuit breaker of upstream {plan.target_name} is open")
                if plan.target.retry.attempts == 1:  # the common case skips tenacity (~10% of a request's CPU)
                    result = await self._attempt(call, plan, deadline, tally)
                else:
                    result = await self._with_retries(call, plan, deadline, tally)
                return Answered(plan, result, tally.effort())
            except GatewayError as error:
                following = next(rest, None) if error.trigger in first.fallback_on else None
                if following is None:
                    return Exhausted(plan, error, tally.effort())
                tally.fallbacks.append(f"{plan.target_name}>{following.target_name}:{error.trigger}")
                self._metrics.fallbacks.labels(first.route, plan.target_name, following.target_name,
                                               str(error.trigger)).inc()
                plan = await prepare(following)
