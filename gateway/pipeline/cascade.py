"""``strategy: cascade``: the fine-tuned arm answers first; the prompted arm only when that answer is rejected.

A request the route would send to its fine-tuned arm is served through that arm's
plan (its retries and fallback chain included), and the answer goes through the
route's acceptors (``gateway.pipeline.acceptors``). Accepted, it is returned; rejected,
or when the fine-tuned arm failed, the request goes on to the prompted arm's own plan
(its prompt, few-shot and knowledge), within the same deadline. A streamed fine-tuned
answer is read whole before it is judged and then replayed, so the client sees either it
or the prompted arm's stream, never a mix. When the prompted arm fails too, the rejected
answer is returned rather than an error (``kept``). The rejected answer was paid for: it
leaves as a ``PaidCall``, which the request's cost and the ledger include exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.accounting.completion import PaidCall
from gateway.accounting.usage import (
    Usage,
    cost_usd,
    estimate_prompt_tokens,
    estimate_tokens,
    reply_usage,
    usage_from,
)
from gateway.errors import GatewayError, UpstreamFailed, UpstreamTimeout
from gateway.pipeline.acceptors import Choice, rejection, reply_choices, stream_choices
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
class Cascaded:
    """How a cascade ended: ``outcome`` is accepted, escalated, kept (the prompted arm failed after a rejection)
    or failed (both arms failed); ``calls``: the rejected answer, when another one was returned instead."""

    attempted: Attempted
    outcome: str
    rejected_by: str
    calls: tuple[PaidCall, ...]


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
class _Judged:
    result: UpstreamReply | BufferedStream
    choices: tuple[Choice, ...]
    usage: Usage
    read_s: float


def _payloads(body: bytes) -> list[bytes]:
    payloads = (line[len(_DATA):].strip() for line in body.split(b"\n") if line.startswith(_DATA))
    return [payload for payload in payloads if payload and payload != _DONE]


def _chunk(payload: bytes) -> dict[str, Any]:
    try:
        chunk = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return {}
    return chunk if isinstance(chunk, dict) else {}


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
            line = b"data: " + orjson.dumps(_without_logprobs(_chunk(payload)))
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
                    raise UpstreamFailed(f"the fine-tuned arm's stream exceeds {max_bytes} bytes")
                parts.append(data)
    except TimeoutError as exc:
        raise UpstreamTimeout("the fine-tuned arm's stream did not end within the route's deadline") from exc
    finally:
        await stream.aclose()
    return b"".join(parts)


async def _judged(result: UpstreamReply | UpstreamStream, plan: Plan, strip: bool, deadline: float,
                  max_bytes: int) -> _Judged:
    """What the acceptors read of an answer, and the answer as the client would get it."""
    if isinstance(result, UpstreamReply):
        reply = result
        if strip:
            data = _without_logprobs(result.data)
            reply = UpstreamReply(orjson.dumps(data), data)
        return _Judged(reply, reply_choices(result.data), reply_usage(result.data, plan.messages), 0.0)
    started = time.perf_counter()
    body = await _drain(result, deadline, max_bytes)
    read_s = time.perf_counter() - started
    payloads = _payloads(body)
    chunks = [_chunk(payload) for payload in payloads]
    usage = next((found for found in map(usage_from, reversed(chunks)) if found is not None), None)
    if usage is None:
        choices = stream_choices(chunks)
        usage = Usage(estimate_prompt_tokens(plan.messages),
                      estimate_tokens("".join(choice.text for choice in choices)), True)
    replay = BufferedStream(_stream_without_logprobs(body) if strip else body)
    return _Judged(replay, stream_choices(chunks), usage, read_s)


def _together(first: Effort, then: Effort) -> Effort:
    return Effort(first.attempts + then.attempts, first.fallbacks + then.fallbacks, first.upstream_s + then.upstream_s)


def _with_effort(attempted: Attempted, effort: Effort) -> Attempted:
    if isinstance(attempted, Exhausted):
        return Exhausted(attempted.plan, attempted.error, effort)
    return Answered(attempted.plan, attempted.result, effort)


def _asking_logprobs(plan: Plan, acceptors: Acceptors) -> tuple[Plan, bool]:
    """The fine-tuned plan, asking for logprobs when an acceptor reads them; True when the client did not."""
    if not acceptors.wants_logprobs or plan.payload.get("logprobs"):
        return plan, False
    return plan.with_payload({**plan.payload, "logprobs": True}), True


async def cascade(run: Run, first: Plan, escalation: Callable[[], Plan], acceptors: Acceptors, deadline: float,
                  max_bytes: int) -> Cascaded:
    """Serve ``first`` (the fine-tuned arm's plan), judge its answer, and escalate to ``escalation()`` (the
    prompted arm's plan, built only then) when it is rejected or failed; ``deadline`` (time.monotonic())
    bounds all of it."""
    asking, strip = _asking_logprobs(first, acceptors)
    attempted = await run(asking)
    if attempted.plan.arm != first.arm:  # the arm's own fallback chain reached another arm: it has answered
        return Cascaded(attempted, "failed" if isinstance(attempted, Exhausted) else "escalated", "error", ())
    judged = None
    if isinstance(attempted, Answered):
        with contextlib.suppress(GatewayError):  # the fine-tuned stream broke or ran out of time while read
            judged = await _judged(attempted.result, attempted.plan, strip, deadline, max_bytes)
    if judged is None:  # the fine-tuned arm gave no answer: the prompted arm's is the only one
        escalated = await run(escalation())
        outcome = "failed" if isinstance(escalated, Exhausted) else "escalated"
        return Cascaded(_with_effort(escalated, _together(attempted.effort, escalated.effort)), outcome, "error", ())
    sent = attempted.plan
    effort = Effort(attempted.effort.attempts, attempted.effort.fallbacks, attempted.effort.upstream_s + judged.read_s)
    rejected = rejection(acceptors, judged.choices, first.payload)
    if rejected is None:
        return Cascaded(Answered(sent, judged.result, effort), "accepted", "", ())
    escalated = await run(escalation())
    both = _together(effort, escalated.effort)
    if isinstance(escalated, Exhausted):  # a rejected answer beats an error
        return Cascaded(Answered(sent, judged.result, both), "kept", rejected, ())
    paid = PaidCall(sent.arm, sent.target_name, judged.usage, cost_usd(sent.target, judged.usage), rejected)
    return Cascaded(Answered(escalated.plan, escalated.result, both), "escalated", rejected, (paid,))
