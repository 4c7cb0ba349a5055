"""An imitation of Anthropic's Messages API for tests: records what it received and fails on command.

``POST /v1/messages`` answers as Anthropic does: a ``message`` object as JSON,
or with ``"stream": true`` the SSE sequence ``message_start``,
``content_block_start``, ``ping``, ``content_block_delta`` (``text_delta``),
``content_block_stop``, ``message_delta`` (stop reason and cumulative output
usage), ``message_stop``, each as an ``event:`` line plus a ``data:`` line.
Failures use Anthropic's error body ``{"type": "error", "error": {"type", "message"}}``.
A test queues ``AnthropicAction``s per model with ``script_for(model, ...)``; each
request takes the next one queued for its ``model`` (or a normal answer).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.support.scripts import ScriptedUpstream

# Anthropic's error ``type`` for each HTTP status it uses.
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                500: "api_error", 529: "overloaded_error"}


@dataclass(frozen=True)
class AnthropicAction:
    status: int = 200
    delay_s: float = 0.0
    retry_after: str | None = None
    message: str | None = None
    text: str = "Hello from the fake Claude."
    input_tokens: int = 21
    error_mid_stream: bool = False

    @property
    def words(self) -> list[str]:
        return self.text.split(" ")

    @property
    def output_tokens(self) -> int:
        return len(self.words)


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


class FakeAnthropic(ScriptedUpstream[AnthropicAction]):
    def __init__(self) -> None:
        super().__init__(AnthropicAction)

    async def messages(self, request: Request) -> Response:
        body, action = await self.take(request)
        if action.delay_s:
            await asyncio.sleep(action.delay_s)
        if action.status != 200:
            return self._error(action)
        message = {"id": "msg_fake01", "type": "message", "role": "assistant", "model": body.get("model", "")}
        if body.get("stream"):
            return StreamingResponse(self._events(message, action), media_type="text/event-stream")
        return Response(orjson.dumps({
            **message, "content": [{"type": "text", "text": action.text}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": action.input_tokens, "output_tokens": action.output_tokens},
        }), media_type="application/json")

    @staticmethod
    def _error(action: AnthropicAction) -> Response:
        kind = _ERROR_TYPES.get(action.status, "api_error")
        text = action.message or f"scripted {kind} ({action.status})"
        headers = {"retry-after": action.retry_after} if action.retry_after else {}
        return Response(orjson.dumps({"type": "error", "error": {"type": kind, "message": text}}),
                        status_code=action.status, headers=headers, media_type="application/json")

    @staticmethod
    async def _events(message: dict[str, Any], action: AnthropicAction) -> AsyncIterator[bytes]:
        yield _event("message_start", {"message": {
            **message, "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": action.input_tokens, "output_tokens": 1}}})
        yield _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        yield _event("ping", {})
        words = action.words
        for position, word in enumerate(words):
            if action.error_mid_stream and position == 1:
                yield _event("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
                return
            piece = word if position == len(words) - 1 else word + " "
            yield _event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}})
        yield _event("content_block_stop", {"index": 0})
        yield _event("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                       "usage": {"output_tokens": action.output_tokens}})
        yield _event("message_stop", {})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/messages", self.messages, methods=["POST"])])
