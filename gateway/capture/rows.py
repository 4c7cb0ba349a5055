"""One captured request as stored: redacted text and the request's accounting, keyed by the gateway's id."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from gateway.accounting.completion import Completion, Exchange
from gateway.accounting.usage import completion_text, stream_text
from policies import token_digest

Redact = Callable[[str], str]


class CaptureRow(NamedTuple):
    """``client_messages`` are the caller's own; ``added_messages`` what the arm put before them (system
    prompt, few-shot examples, retrieved context), kept apart so a dataset can swap in another arm's prompt.

    A named tuple, in the table's column order: built in one call, where a frozen dataclass cost ~1,400
    instructions a field, and bound as a plain copy of itself, where the dataclass needed its fields read out."""

    request_id: str
    captured_at: float
    route: str
    arm: str
    target: str
    experiment: str
    variant: str
    score: float | None
    stream: bool
    client_messages: str  # JSON
    added_messages: str  # JSON
    answer: str
    prompt_tokens: int | None
    completion_tokens: int | None
    usage_estimated: bool | None
    cost_usd: float | None
    latency_ms: float
    owner: str | None = None  # the key tag that made the request: it may give feedback
    token_digest: str | None = None  # SHA-256 of the request's x-gateway-feedback-token: its holder may too

    @property
    def messages(self) -> list[dict[str, Any]]:
        loaded: list[dict[str, Any]] = orjson.loads(self.client_messages)
        return loaded


@dataclass(frozen=True, slots=True)
class ShadowAnswer:
    """What a shadow target answered to a captured request (its body as it came; parsed by the writer)."""

    request_id: str
    route: str
    target: str
    body: bytes


@dataclass(frozen=True, slots=True)
class ShadowRow:
    request_id: str
    target: str
    answer: str  # redacted
    captured_at: float


def shadow_row(shadow: ShadowAnswer, redact: Redact, now: Callable[[], float] = time.time) -> ShadowRow:
    data = orjson.loads(shadow.body)
    return ShadowRow(shadow.request_id, shadow.target, redact(completion_text(data) if isinstance(data, dict) else ""),
                     now())


@dataclass(frozen=True, slots=True)
class CaptureFeedback:
    """A caller's judgement of a captured request, joined to it by the gateway's request id."""

    request_id: str
    score: float | None
    success: bool | None
    comment: str | None
    at: float


def _redacted(content: Any, redact: Redact) -> Any:
    """A message's content with every text redacted: a string, or the text parts of a list."""
    if isinstance(content, str):
        return redact(content)
    if isinstance(content, list):
        return [{**part, "text": redact(part["text"])} if isinstance(part, Mapping) and isinstance(part.get("text"), str)
                else part for part in content]
    return content


def _message(message: Mapping[str, Any], redact: Redact) -> Mapping[str, Any]:
    """``message`` redacted: itself when its text holds nothing to redact (most do), else a copy."""
    content = message.get("content")
    redacted = _redacted(content, redact)
    return message if redacted == content else {**message, "content": redacted}


def _messages_json(messages: Sequence[Mapping[str, Any]], redact: Redact) -> str:
    return orjson.dumps([_message(message, redact) for message in messages]).decode()


def _added(exchange: Exchange) -> Sequence[Mapping[str, Any]]:
    """What went upstream before the client's messages; everything sent when the tail is not theirs."""
    sent, own = list(exchange.sent_messages), list(exchange.client_messages)
    if own and sent[-len(own):] == own:
        return sent[:-len(own)]
    return sent


def _chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(len(part["text"]) for part in content if isinstance(part, Mapping) and isinstance(part.get("text"), str))
    return 0


def exchange_chars(exchange: Exchange) -> int:
    """About how much text a capture holds (the client's message texts and the answer's bytes): what the
    writer's queue is bounded by, since a count alone would let a few huge requests hold gigabytes."""
    answer = exchange.answer
    chars = len(answer) if isinstance(answer, bytes) else sum(map(len, answer))
    for message in exchange.client_messages:  # on the request path: a loop, not a generator
        chars += _chars(message.get("content"))
    return chars


def _answer(exchange: Exchange) -> str:
    if isinstance(exchange.answer, bytes):
        data = orjson.loads(exchange.answer)
        return completion_text(data) if isinstance(data, dict) else ""
    return stream_text(exchange.answer)


def capture_row(done: Completion, redact: Redact, now: Callable[[], float] = time.time) -> CaptureRow:
    """``done`` as stored: parsed and redacted here, in the capture writer's thread."""
    exchange, routing, usage = done.exchange, done.routing, done.usage
    if exchange is None:
        raise ValueError(f"request {done.arrival.request_id} was not captured")
    return CaptureRow(
        done.arrival.request_id, now(), routing.route, routing.arm, routing.target, routing.experiment,
        routing.variant, routing.score, routing.stream,
        _messages_json(exchange.client_messages, redact), _messages_json(_added(exchange), redact),
        redact(_answer(exchange)),
        usage.prompt_tokens if usage else None, usage.completion_tokens if usage else None,
        usage.estimated if usage else None, done.cost_usd, round(done.duration_s * 1000, 3), done.arrival.owner,
        token_digest(routing.feedback_token) if routing.feedback_token else None)
