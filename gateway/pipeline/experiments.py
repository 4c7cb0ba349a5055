"""A/B experiments at the edge: assign each request its variant, record what it cost and how it went.

Assignment is stateless (``policies.experiments.assignment``), so replicas agree without
talking. Each finished request of an experiment becomes an ``Outcome`` in the
outcome store (Redis when configured, else local files), written off the
request path; feedback joins it there by the gateway's request id, from the
key that made the request or with the request's feedback token.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Mapping

from gateway.accounting.completion import Completion
from gateway.errors import InvalidRequest
from gateway.protocol import ChatCompletionRequest
from policies import (
    Assignment,
    Observation,
    Outcome,
    OutcomeStore,
    PolicySet,
    Variant,
    assign,
    experiment_for,
    experiment_key,
    token_digest,
)

log = logging.getLogger("hybrid_gateway.experiments")
VARIANT_HEADER = "x-gateway-variant"


def assign_variant(policy: PolicySet, chat: ChatCompletionRequest,
                   headers: Mapping[str, str]) -> tuple[Assignment, Variant] | None:
    """The running experiment's variant for this request, or None when the route has none active."""
    found = experiment_for(policy, chat.model)
    if found is None:
        return None
    name, experiment = found
    try:
        assignment = assign(name, experiment, experiment_key(experiment, chat.user, headers),
                            forced=headers.get(VARIANT_HEADER))
    except ValueError as exc:
        raise InvalidRequest(str(exc), param=VARIANT_HEADER, code="invalid_variant") from exc
    if assignment is None:
        return None
    return assignment, experiment.variants[assignment.variant]


def feedback_token() -> str:
    """A secret for the caller of one experiment request (``x-gateway-feedback-token``): feedback that carries
    it is accepted from any caller, e.g. a service collecting users' ratings with its own key or none."""
    return secrets.token_urlsafe(18)


class OutcomeRecorder:
    """A ledger hook: stores each finished experiment request, without delaying its response."""

    def __init__(self, store: OutcomeStore) -> None:
        self.store = store
        self._pending: set[asyncio.Task[None]] = set()

    def __call__(self, done: Completion) -> None:
        routing = done.routing
        if not routing.experiment:
            return
        token = routing.feedback_token
        outcome = Outcome(request_id=done.arrival.request_id, experiment=routing.experiment,
                          variant=routing.variant, route=routing.route, arm=routing.arm, target=routing.target,
                          status=done.status, latency_ms=done.duration_s * 1000, cost_usd=done.cost_usd,
                          crossed=bool(done.delivery.fallback), keyed=routing.keyed, at=time.time(),
                          owner=done.arrival.owner, token=token_digest(token) if token else None)
        task = asyncio.get_running_loop().create_task(self._write(outcome))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, outcome: Outcome) -> None:
        try:
            await self.store.record(outcome)
        except OSError as exc:  # a full or read-only disk must not break serving
            log.error("could not record the outcome of request %s: %s", outcome.request_id, exc)

    async def drain(self) -> None:
        """Wait for pending writes, at shutdown."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


async def observations(store: OutcomeStore, experiment: str) -> list[Observation]:
    """An experiment's recorded requests joined with their feedback, as the statistics read them."""
    return [Observation(outcome.variant, feedback.success if feedback else None, feedback.score if feedback else None,
                        outcome.latency_ms, outcome.cost_usd, outcome.crossed)
            for outcome, feedback in await store.rows(experiment)]
