"""Run a request's upstream call through retries, circuit breakers and the fallback chain.

Each target of the chain is tried with its own retry policy (tenacity:
exponential backoff with full jitter, the upstream's ``Retry-After`` honoured up
to a cap); an open breaker skips the target at once; a failure whose trigger the
arm's fallback lists moves to the next plan. Everything stays inside the
route's deadline: a retry whose wait would not leave time for an attempt is
not taken (counted in ``gateway_retries_skipped``), so the chain moves to its
fallback at once instead of sleeping into a 504. Only the final outcome is
returned, so the request is accounted once, whatever happened on the way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TypeVar

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


@dataclass
class Journey:
    """What the attempts did: shown in headers, metrics and the access log."""

    attempts: int = 0
    fallbacks: list[str] = field(default_factory=list)

    def header(self) -> str:
        return ",".join(self.fallbacks)


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

    async def _breaker_allows(self, plan: Plan) -> bool:
        config: Breaker | None = plan.target.breaker
        return config is None or await self._breakers.allow(plan.target_name, config)

    async def _note(self, plan: Plan, error: GatewayError | None) -> None:
        config = plan.target.breaker
        if config is None or (error is not None and error.trigger not in _BREAKER_FAILURES):
            return
        await self._breakers.record(plan.target_name, config, error is None)

    async def _attempt(self, call: Call[Result], plan: Plan, deadline: float, journey: Journey) -> Result:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise UpstreamTimeout(f"the route's deadline passed before upstream {plan.target_name} answered")
        journey.attempts += 1
        try:
            result = await call(_bounded(plan, remaining))
        except GatewayError as error:
            await self._note(plan, error)
            raise
        await self._note(plan, None)
        return result

    async def _with_retries(self, call: Call[Result], plan: Plan, deadline: float, journey: Journey) -> Result:
        retry = plan.target.retry
        if retry.attempts == 1:  # the common case skips tenacity's per-call machinery (~10% of a request's CPU)
            return await self._attempt(call, plan, deadline, journey)

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
                return await self._attempt(call, plan, deadline, journey)
        raise AssertionError("tenacity reraises the last error")  # pragma: no cover

    async def run(self, call: Call[Result], first: Plan, rest: Iterator[Plan], journey: Journey,
                  deadline: float | None = None) -> tuple[Plan, Result]:
        """The plan that succeeded and its result; the last error when every plan failed.

        ``deadline`` (on this runner's clock) is the request's own when work before the first
        attempt, such as retrieval, already spent part of it; by default the route's starts now.
        """
        deadline = self._clock() + first.deadline_s if deadline is None else deadline
        plan: Plan | None = first
        last_error: GatewayError | None = None
        while plan is not None:
            try:
                if not await self._breaker_allows(plan):
                    raise CircuitOpen(f"the circuit breaker of upstream {plan.target_name} is open")
                return plan, await self._with_retries(call, plan, deadline, journey)
            except GatewayError as error:
                last_error = error
                following = next(rest, None) if error.trigger in first.fallback_on else None
                if following is None:
                    raise
                journey.fallbacks.append(f"{plan.target_name}>{following.target_name}:{error.trigger}")
                self._metrics.fallbacks.labels(first.route, plan.target_name, following.target_name,
                                               str(error.trigger)).inc()
                plan = following
        raise last_error or CircuitOpen("no upstream left to try")  # pragma: no cover
