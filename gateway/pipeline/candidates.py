"""An answer read whole so it can be judged before the client sees it: what cascades and ensembles share.

A strategy (``gateway.pipeline.cascade``, ``gateway.pipeline.ensemble``) serves a plan, reads its answer (a
stream drained within the deadline and a size bound, then replayed as one piece), and hands the acceptors
and selectors the answer's choices and usage. Log-probabilities the gateway asked for on the client's behalf
are taken out of what the client would get.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.accounting.completion import PaidCall, Strategy
from gateway.accounting.usage import (
    Usage,
    cost_usd,
    estimate_prompt_tokens,
    estimate_tokens,
    reply_usage,
    sse_chunk,
    sse_payloads,
    usage_from,
)
from gateway.errors import UpstreamFailed, UpstreamTimeout
from gateway.pipeline.acceptors import Choice, reply_choices, stream_choices
from gateway.pipeline.attempts import Answered, Effort, Exhausted
from gateway.pipeline.plan import Plan
from gateway.upstream import UpstreamReply, UpstreamStream
from policies import Acceptors

Attempted = Answered[Any] | Exhausted
Run = Callable[[Plan], Awaitable[Attempted]]
"""Serve one plan, its fallback chain included, within the request's deadline."""

_DATA = b"data:"
_DONE = b"[DONE]"


@dataclass(frozen=True, slots=True)
class Served:
    """How a cascade or ensemble ended: the attempt whose answer (or error) the client gets, and what it did."""

    attempted: Attempted
    strategy: Strategy


class BufferedStream:
    """A stream read whole, replayed as one piece to the relay (``UpstreamStream``)."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._body:
            yield self._body

    async def aclose(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Judged:
    """A plan's answer, read: what the client would get, its choices and usage, and the time reading took."""

    attempted: Answered[Any]
    result: UpstreamReply | BufferedStream
    choices: tuple[Choice, ...]
    usage: Usage
    read_s: float

    @property
    def plan(self) -> Plan:
        return self.attempted.plan

    @property
    def effort(self) -> Effort:
        """The attempts' effort, the reading included."""
        effort = self.attempted.effort
        return Effort(effort.attempts, effort.fallbacks, effort.upstream_s + self.read_s)

    def answered(self) -> Answered[Any]:
        """The answer as the relay takes it."""
        return Answered(self.plan, self.result, self.effort)

    def paid(self, rejected_by: str, routed: bool) -> PaidCall:
        """This answer as a call paid for and not returned."""
        return PaidCall(self.plan.arm, self.plan.target_name, self.usage, cost_usd(self.plan.target, self.usage),
                        rejected_by, routed)


def _without_logprobs(data: dict[str, Any]) -> dict[str, Any]:
    choices = data.get("choices")
    if not isinstance(choices, list):
        return data
    return {**data, "choices": [{k: v for k, v in c.items() if k != "logprobs"} if isinstance(c, dict) else c
                                for c in choices]}


def _stream_without_logprobs(body: bytes) -> bytes:
    """The stream's bytes with the logprobs the gateway asked for (and the client did not) taken out."""
    lines = []
    for line in body.split(b"\n"):
        payload = line[len(_DATA):].strip() if line.startswith(_DATA) else b""
        if payload and payload != _DONE and b'"logprobs"' in payload:
            line = b"data: " + orjson.dumps(_without_logprobs(sse_chunk(payload)))
        lines.append(line)
    return b"\n".join(lines)


async def _drain(stream: UpstreamStream, deadline: float, max_bytes: int) -> bytes:
    """The whole stream, read by ``deadline`` (time.monotonic()) and within ``max_bytes``."""
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
            async for data in stream.chunks():
                size += len(data)
                if size > max_bytes:
                    raise UpstreamFailed(f"a candidate's stream exceeds {max_bytes} bytes")
                parts.append(data)
    except TimeoutError as exc:
        raise UpstreamTimeout("a candidate's stream did not end within the route's deadline") from exc
    finally:
        await stream.aclose()
    return b"".join(parts)


async def read_whole(attempted: Answered[Any], strip: bool, deadline: float, max_bytes: int) -> Judged:
    """What the acceptors read of an answer, and the answer as the client would get it; raises the
    ``GatewayError`` of a stream that breaks, overflows or runs out of time while read."""
    result, plan = attempted.result, attempted.plan
    if isinstance(result, UpstreamReply):
        reply = result
        if strip:
            data = _without_logprobs(result.data)
            reply = UpstreamReply(orjson.dumps(data), data)
        return Judged(attempted, reply, reply_choices(result.data), reply_usage(result.data, plan.messages), 0.0)
    started = time.perf_counter()
    body = await _drain(result, deadline, max_bytes)
    read_s = time.perf_counter() - started
    chunks = [sse_chunk(payload) for payload in sse_payloads(body)]
    choices = stream_choices(chunks)
    usage = next((found for found in map(usage_from, reversed(chunks)) if found is not None), None)
    if usage is None:
        usage = Usage(estimate_prompt_tokens(plan.messages),
                      estimate_tokens("".join(choice.text for choice in choices)), True)
    replay = BufferedStream(_stream_without_logprobs(body) if strip else body)
    return Judged(attempted, replay, choices, usage, read_s)


def together(*efforts: Effort) -> Effort:
    """The efforts of calls made one after another."""
    return Effort(sum(e.attempts for e in efforts), tuple(f for e in efforts for f in e.fallbacks),
                  sum(e.upstream_s for e in efforts))


def with_effort(attempted: Attempted, effort: Effort) -> Attempted:
    if isinstance(attempted, Exhausted):
        return Exhausted(attempted.plan, attempted.error, effort)
    return Answered(attempted.plan, attempted.result, effort)


def asking_logprobs(plan: Plan, acceptors: Acceptors) -> tuple[Plan, bool]:
    """The plan, asking for logprobs when an acceptor reads them; True when the client did not ask."""
    if not acceptors.wants_logprobs or plan.payload.get("logprobs"):
        return plan, False
    return plan.with_payload({**plan.payload, "logprobs": True}), True
