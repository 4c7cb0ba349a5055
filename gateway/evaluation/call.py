"""One example through a running gateway's route, one arm forced or the route's strategy: a streamed chat
completion, measured.

Streaming is the only way to see time to first token, so every call streams
with ``stream_options.include_usage``; the text, the usage chunk and the
comments the gateway writes before ``data: [DONE]`` give the rest: the total
cost (``: x-gateway-cost-usd=``, every paid upstream call included) and, when
the route's strategy paid for more than one answer or judged one, every call
it paid for (``: x-gateway-calls=``, the same list as the ``x-gateway-calls``
header, with final costs). Failures become :class:`CallFailed` with
``retryable`` set for what a later attempt may cure (transport errors, 429,
5xx, a stream cut short).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

_COST_COMMENT = ": x-gateway-cost-usd="
_CALLS_COMMENT = ": x-gateway-calls="
_CALL = re.compile(r'([\w-]+);target="([^"]*)";cost="([^"]*)"(?:;rejected="([^"]*)")?')
_DATA = "data:"
FATAL_CODES = frozenset({"arm_override_not_allowed", "model_not_found", "invalid_api_key"})
"""Error codes that mean the run is misconfigured, not that one example failed."""


class CallFailed(Exception):
    def __init__(self, message: str, *, status: int | None, code: str, retryable: bool) -> None:
        super().__init__(message)
        self.status, self.code, self.retryable = status, code, retryable


@dataclass(frozen=True)
class PaidCall:
    """One upstream answer a strategy paid for, as ``x-gateway-calls`` lists it (the returned one last)."""

    arm: str
    target: str
    cost_usd: float | None
    rejected_by: str
    """The acceptor that turned this answer down; empty for the answer returned."""


def parse_calls(text: str) -> tuple[PaidCall, ...]:
    """The items of an ``x-gateway-calls`` list (header or stream comment)."""
    return tuple(PaidCall(arm, target, None if cost in ("unknown", "pending") else float(cost), rejected)
                 for arm, target, cost, rejected in _CALL.findall(text))


@dataclass(frozen=True)
class Answer:
    text: str
    latency_s: float
    """From sending the request to ``data: [DONE]``."""
    ttft_s: float | None
    """From sending the request to the first chunk with generated text."""
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    """Every paid upstream call of the request, from the stream's cost comment."""
    calls: tuple[PaidCall, ...]
    """What the route's strategy paid for, from the stream's calls comment; empty when it wrote none."""
    headers: Mapping[str, str]


def _error_of(status: int, body: bytes) -> CallFailed:
    try:
        error = orjson.loads(body).get("error") or {}
    except (orjson.JSONDecodeError, AttributeError):
        error = {}
    code = str(error.get("code") or f"http_{status}")
    message = str(error.get("message") or body[:200].decode(errors="replace"))
    return CallFailed(f"HTTP {status} {code}: {message}", status=status, code=code,
                      retryable=status == 429 or status >= 500)


class _Stream:
    """What the SSE lines of one answer add up to."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.parts: list[str] = []
        self.ttft_s: float | None = None
        self.usage: Mapping[str, Any] | None = None
        self.cost_usd: float | None = None
        self.calls: tuple[PaidCall, ...] = ()
        self.done = False

    def feed(self, line: str) -> None:
        if line.startswith(_COST_COMMENT):
            cost = line[len(_COST_COMMENT):]
            self.cost_usd = None if cost == "unknown" else float(cost)
            return
        if line.startswith(_CALLS_COMMENT):
            self.calls = parse_calls(line[len(_CALLS_COMMENT):])
            return
        if not line.startswith(_DATA):
            return
        payload = line[len(_DATA):].strip()
        if payload == "[DONE]":
            self.done = True
            return
        chunk = orjson.loads(payload)
        if "error" in chunk:
            error = chunk["error"] or {}
            raise CallFailed(f"stream failed: {error.get('message')}", status=None,
                             code=str(error.get("code") or "stream_error"), retryable=True)
        if isinstance(chunk.get("usage"), Mapping):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            text = (choice.get("delta") or {}).get("content")
            if isinstance(text, str) and text:
                if self.ttft_s is None:
                    self.ttft_s = time.perf_counter() - self.started
                self.parts.append(text)


async def ask(client: httpx.AsyncClient, url: str, route: str, arm: str | None,
              messages: Sequence[Mapping[str, Any]], request_id: str) -> Answer:
    """Stream one completion of ``route`` forced to ``arm`` (None: as the route serves it, its strategy
    included); raise :class:`CallFailed` on any failure."""
    body = {"model": route, "messages": list(messages), "stream": True,
            "stream_options": {"include_usage": True}}
    headers = {"x-request-id": request_id, **({"x-gateway-arm": arm} if arm is not None else {})}
    started = time.perf_counter()
    stream = _Stream(started)
    try:
        async with client.stream("POST", url.rstrip("/") + "/v1/chat/completions", json=body,
                                 headers=headers) as response:
            if response.status_code != 200:
                raise _error_of(response.status_code, await response.aread())
            async for line in response.aiter_lines():
                stream.feed(line)
            answer_headers = dict(response.headers)
    except httpx.TransportError as exc:
        raise CallFailed(f"{type(exc).__name__}: {exc}", status=None, code="transport_error",
                         retryable=True) from exc
    if not stream.done:
        raise CallFailed("the stream ended before data: [DONE]", status=None, code="stream_incomplete",
                         retryable=True)
    usage = stream.usage or {}
    return Answer("".join(stream.parts), time.perf_counter() - started, stream.ttft_s,
                  usage.get("prompt_tokens"), usage.get("completion_tokens"), stream.cost_usd, stream.calls, answer_headers)
