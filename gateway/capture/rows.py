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


class Captured(NamedTuple):
    """A captured request as the writer's queue holds it: the ``Completion``'s fields the row needs, read out
    on the request path (``captured``), raw. Flat, so that a queued capture keeps this tuple and the messages
    alive for the writer's linger, and the rest of the request's records die with the request as a plain one's
    do: queued whole, its ~20 tracked objects outlived the young generation, and the collector ran ~5 times as
    often and carried them through its older generations."""

    request_id: str
    route: str
    arm: str
    target: str
    experiment: str
    variant: str
    score: float | None
    stream: bool
    client_messages: Sequence[Mapping[str, Any]]
    sent_messages: Sequence[Mapping[str, Any]]  # as sent upstream: the arm's prompt, context, then the client's
    answer: bytes | tuple[bytes, ...]  # a JSON reply's body, or a stream's data payloads
    prompt_tokens: int | None
    completion_tokens: int | None
    usage_estimated: bool | None
    cost_usd: float | None
    duration_s: float
    owner: str | None
    feedback_token: str | None
    chars: int  # about how much text it holds (``exchange_chars``): what the writer's queue is bounded by


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


def _added(captured: Captured) -> Sequence[Mapping[str, Any]]:
    """What went upstream before the client's messages; everything sent when the tail is not theirs."""
    sent, own = captured.sent_messages, captured.client_messages
    cut = len(sent) - len(own)
    if own and cut >= 0 and list(sent[cut:]) == list(own):
        return sent[:cut]
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


def _answer(answer: bytes | tuple[bytes, ...]) -> str:
    if isinstance(answer, bytes):
        data = orjson.loads(answer)
        return completion_text(data) if isinstance(data, dict) else ""
    return stream_text(answer)


def captured(done: Completion) -> Captured:
    """``done`` as the writer's queue holds it: read out on the request path, nothing parsed."""
    exchange, routing, usage = done.exchange, done.routing, done.usage
    if exchange is None:
        raise ValueError(f"request {done.arrival.request_id} was not captured")
    if usage is None:
        prompt_tokens = completion_tokens = estimated = None
    else:
        prompt_tokens, completion_tokens, estimated = usage.prompt_tokens, usage.completion_tokens, usage.estimated
    return Captured(done.arrival.request_id, routing.route, routing.arm, routing.target, routing.experiment,
                    routing.variant, routing.score, routing.stream, exchange.client_messages, exchange.sent_messages,
                    exchange.answer, prompt_tokens, completion_tokens, estimated, done.cost_usd, done.duration_s,
                    done.arrival.owner, routing.feedback_token, exchange_chars(exchange))


def capture_row(item: Captured, redact: Redact, now: Callable[[], float] = time.time) -> CaptureRow:
    """``item`` as stored: parsed and redacted here, in the capture writer's thread. The latency is rounded to
    the microsecond by integer division: ``round(x, 3)`` formats and parses decimal digits (~3k instructions)."""
    return CaptureRow(
        item.request_id, now(), item.route, item.arm, item.target, item.experiment, item.variant, item.score,
        item.stream, _messages_json(item.client_messages, redact), _messages_json(_added(item), redact),
        redact(_answer(item.answer)), item.prompt_tokens, item.completion_tokens, item.usage_estimated,
        item.cost_usd, int(item.duration_s * 1_000_000 + 0.5) / 1000, item.owner,
        token_digest(item.feedback_token) if item.feedback_token else None)
