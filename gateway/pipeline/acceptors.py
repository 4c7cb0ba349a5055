"""A cascade's acceptors: whether the fine-tuned arm's answer is good enough to return.

Each check is cheap and local (no upstream call): patterns the answer must not or must
match, its length, JSON validity when the request asked for JSON, and the answer's token
log-probabilities when the upstream sent them. ``rejection`` returns the name of the
first check that fails, which the ledger counts per route
(``gateway_cascade_rejections_total``). Every choice of the answer is checked; an answer
that calls tools is judged on nothing but its log-probabilities, as it has no text to read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from policies import Acceptors


@dataclass(frozen=True, slots=True)
class Choice:
    """One choice of an answer, as the acceptors read it."""

    text: str
    calls_tools: bool
    logprobs: tuple[float, ...]  # one per output token; empty when the upstream sent none


def _logprobs(choice: Mapping[str, Any]) -> list[float]:
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, Mapping) else None
    if not isinstance(content, list):
        return []
    return [float(token["logprob"]) for token in content
            if isinstance(token, Mapping) and isinstance(token.get("logprob"), int | float)]


def reply_choices(data: Mapping[str, Any]) -> tuple[Choice, ...]:
    """The choices of a JSON chat completion."""
    found = []
    for choice in data.get("choices") or ():
        if not isinstance(choice, Mapping):
            continue
        message = choice.get("message")
        message = message if isinstance(message, Mapping) else {}
        content = message.get("content")
        found.append(Choice(content if isinstance(content, str) else "", bool(message.get("tool_calls")),
                            tuple(_logprobs(choice))))
    return tuple(found)


def stream_choices(chunks: Iterable[Mapping[str, Any]]) -> tuple[Choice, ...]:
    """The choices of a streamed chat completion, from its parsed chunks."""
    texts: dict[int, list[str]] = {}
    tools: set[int] = set()
    logprobs: dict[int, list[float]] = {}
    for chunk in chunks:
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, Mapping):
                continue
            index = choice.get("index", 0)
            index = index if isinstance(index, int) else 0
            delta = choice.get("delta")
            delta = delta if isinstance(delta, Mapping) else {}
            content = delta.get("content")
            texts.setdefault(index, []).append(content if isinstance(content, str) else "")
            if delta.get("tool_calls"):
                tools.add(index)
            logprobs.setdefault(index, []).extend(_logprobs(choice))
    return tuple(Choice("".join(texts[i]), i in tools, tuple(logprobs.get(i, ()))) for i in sorted(texts))


def _json_rejected(text: str, response_format: Mapping[str, Any]) -> bool:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return True
    if not isinstance(value, dict):
        return True
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    if response_format.get("type") == "json_schema" and isinstance(schema, Mapping):
        import jsonschema  # only a cascade asked for a schema pays for the import

        try:
            return next(iter(jsonschema.Draft202012Validator(schema).iter_errors(value)), None) is not None
        except jsonschema.SchemaError:
            return False  # the client's own schema is malformed: the answer is not the one to blame
    return False


def _wants_json(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    response_format = payload.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") in ("json_object", "json_schema"):
        return response_format
    return None


def _choice_rejection(acceptors: Acceptors, choice: Choice, response_format: Mapping[str, Any] | None) -> str | None:
    if not choice.calls_tools:
        text = choice.text
        if any(pattern.search(text) for pattern in acceptors.rejecting):
            return "reject"
        if not all(pattern.search(text) for pattern in acceptors.requiring):
            return "require"
        if len(text) < acceptors.min_chars:
            return "min_chars"
        if acceptors.max_chars is not None and len(text) > acceptors.max_chars:
            return "max_chars"
        if acceptors.valid_json and response_format is not None and _json_rejected(text, response_format):
            return "json"
    if choice.logprobs:
        if acceptors.min_mean_logprob is not None and (
                sum(choice.logprobs) / len(choice.logprobs) < acceptors.min_mean_logprob):
            return "mean_logprob"
        if acceptors.min_token_logprob is not None and min(choice.logprobs) < acceptors.min_token_logprob:
            return "min_logprob"
    return None


def rejection(acceptors: Acceptors, choices: tuple[Choice, ...], payload: Mapping[str, Any]) -> str | None:
    """The first acceptor that rejects the answer (``empty`` when it has no choice at all), or None."""
    if not choices:
        return "empty"
    response_format = _wants_json(payload)
    for choice in choices:
        rejected = _choice_rejection(acceptors, choice, response_format)
        if rejected is not None:
            return rejected
    return None
