"""Shadow traffic: mirror a share of a route's requests to a candidate target, off the client's path.

The mirror runs as a background task with its own timeout, never delays or
alters the client's answer, and is accounted under its own metrics
(``gateway_shadow_*``), so a fine-tuned candidate's latency, tokens, cost and
errors can be compared with production before it serves anyone. Mirrors are
always non-streaming: the comparison is of whole answers. On a captured request the
shadow's answer goes to ``on_answer`` too: paired with the served answer, it labels
the router's training data (``hybrid-gateway dataset labels``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from gateway.accounting.usage import cost_usd, reply_usage
from gateway.errors import GatewayError
from gateway.metrics import Metrics
from gateway.upstream import Upstreams
from policies import PolicySet, Shadow

log = logging.getLogger("hybrid_gateway.shadow")
MAX_IN_FLIGHT = 256


class ShadowRunner:
    def __init__(self, metrics: Metrics, upstreams: Upstreams, rng: random.Random | None = None) -> None:
        self._metrics = metrics
        self._upstreams = upstreams
        self._rng = rng or random.Random()
        self._tasks: set[asyncio.Task[None]] = set()

    def maybe_mirror(self, policy: PolicySet, route: str, shadow: Shadow | None, payload: dict[str, Any],
                     on_answer: Callable[[str, bytes], None] | None = None) -> bool:
        """Start a mirror of ``payload`` for ``share`` of calls; False when not mirrored (or too many in flight).
        ``on_answer(target, body)`` receives the shadow's answer when it succeeds."""
        if shadow is None or self._rng.random() >= shadow.share:
            return False
        if len(self._tasks) >= MAX_IN_FLIGHT:  # a slow candidate must not pile up without bound
            self._metrics.shadow_requests.labels(route, shadow.target, "dropped").inc()
            return False
        name, target = policy.target(shadow.target)
        body = {key: value for key, value in payload.items() if key not in ("stream", "stream_options")}
        body["model"] = target.model
        task = asyncio.get_running_loop().create_task(self._mirror(route, name, target, body, on_answer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _mirror(self, route: str, name: str, target: Any, body: dict[str, Any],
                      on_answer: Callable[[str, bytes], None] | None) -> None:
        started = time.perf_counter()
        status = "200"
        try:
            reply = await self._upstreams.for_target(target).complete(target, body)
        except GatewayError as exc:
            status = str(exc.status)
            log.info("shadow call to %s failed: %s", name, exc.code)
            return
        finally:
            self._metrics.shadow_requests.labels(route, name, status).inc()
            self._metrics.shadow_duration.labels(route, name).observe(time.perf_counter() - started)
        usage = reply_usage(reply.data, body["messages"])
        self._metrics.shadow_tokens.labels(route, name, "input").inc(usage.prompt_tokens)
        self._metrics.shadow_tokens.labels(route, name, "output").inc(usage.completion_tokens)
        cost = cost_usd(target, usage)
        if cost:
            self._metrics.shadow_cost.labels(route, name).inc(cost)
        if on_answer is not None:
            on_answer(name, reply.body)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
