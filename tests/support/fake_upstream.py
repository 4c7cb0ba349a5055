"""An OpenAI-compatible upstream for tests that records what it received and fails on command.

A test queues ``Action``s per model with ``script_for(model, ...)``; each chat
request takes the next one queued for the ``model`` in its body (or the default:
a normal answer), so a test states exactly which attempt of which model times
out, is rate limited, fails or breaks its stream, whatever else (a shadow, a
fallback) calls the upstream meanwhile. ``unmet()`` tells what no request took.
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


@dataclass(frozen=True)
class Action:
    status: int = 200
    delay_s: float = 0.0
    retry_after: str | None = None
    usage: bool = True
    break_after_chunks: int | None = None
    stall_after_chunks: int | None = None  # then sends nothing more until the gateway hangs up
    text: str = "Hello from the fake upstream."
    error_message: str | None = None
    logprob: float = -0.05  # each word's, sent when the request asks for logprobs
    tool_call: tuple[str, str] | None = None  # (name, arguments): answer with this function call, not ``text``


TOOL_CALL_ID = "call_fake_0"
"""The id of the fake's scripted tool call (``Action.tool_call``)."""


class FakeUpstream(ScriptedUpstream[Action]):
    def __init__(self) -> None:
        super().__init__(Action)
        self.abandoned = 0  # streams the gateway closed before their end (never reset: tests compare counts)

    def models_called(self) -> list[str]:
        """The model of every request received, in order."""
        return [body["model"] for body in self.received]

    async def chat(self, request: Request) -> Response:
        body, action = await self.take(request)
        if action.delay_s:
            await asyncio.sleep(action.delay_s)
        if action.status != 200:
            headers = {"retry-after": action.retry_after} if action.retry_after else {}
            message = action.error_message or f"scripted failure {action.status}"
            error = {"error": {"message": message, "type": "server_error"}}
            return Response(orjson.dumps(error), status_code=action.status, headers=headers,
                            media_type="application/json")
        words = action.text.split(" ") if action.tool_call is None else action.tool_call[1].split(",")
        usage = {"prompt_tokens": 11, "completion_tokens": len(words), "total_tokens": 11 + len(words)}
        base = {"id": "chatcmpl-fake", "created": 1, "model": body["model"]}
        logprobs = bool(body.get("logprobs"))
        if body.get("stream"):
            wants_usage = action.usage and (body.get("stream_options") or {}).get("include_usage")
            return StreamingResponse(self._chunks(base, words, usage if wants_usage else None, action, logprobs),
                                     media_type="text/event-stream")
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": action.text},
                                  "finish_reason": "stop"}
        if action.tool_call is not None:
            name, arguments = action.tool_call
            choice = {"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": None, "tool_calls": [
                    {"id": TOOL_CALL_ID, "type": "function", "function": {"name": name, "arguments": arguments}}]}}
        if logprobs:
            choice["logprobs"] = {"content": [{"token": word, "logprob": action.logprob} for word in words]}
        answer = {**base, "object": "chat.completion", "choices": [choice]}
        if action.usage:
            answer["usage"] = usage
        return Response(orjson.dumps(answer), media_type="application/json")

    async def _chunks(self, base: dict[str, Any], words: list[str], usage: dict[str, Any] | None,
                      action: Action, logprobs: bool = False) -> AsyncIterator[bytes]:
        def event(data: dict[str, Any]) -> bytes:
            return b"data: " + orjson.dumps({**base, "object": "chat.completion.chunk", **data}) + b"\n\n"

        for index, word in enumerate(words):
            if action.break_after_chunks is not None and index == action.break_after_chunks:
                raise ConnectionResetError("scripted break")
            if action.stall_after_chunks is not None and index == action.stall_after_chunks:
                try:
                    await asyncio.Event().wait()
                finally:
                    self.abandoned += 1
            choice: dict[str, Any] = {"index": 0, "delta": {"content": word + " "}, "finish_reason": None}
            if action.tool_call is not None:  # the arguments in pieces, cut after each comma
                piece = word if index == len(words) - 1 else word + ","
                call: dict[str, Any] = {"index": 0, "function": {"arguments": piece}}
                if index == 0:
                    call.update(id=TOOL_CALL_ID, type="function")
                    call["function"]["name"] = action.tool_call[0]
                choice = {"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}
            if logprobs:
                choice["logprobs"] = {"content": [{"token": word + " ", "logprob": action.logprob}]}
            yield event({"choices": [choice]})
        finish = "stop" if action.tool_call is None else "tool_calls"
        yield event({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if usage is not None:
            yield event({"choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"

    async def embeddings(self, request: Request) -> Response:
        """One vector per input, of ``dimensions`` numbers when asked (the size of the reply is the test's)."""
        body = orjson.loads(await request.body())
        self.received.append(body)
        given = body["input"]
        count = len(given) if isinstance(given, list) and given and not isinstance(given[0], int) else 1
        vector = [0.1, 0.2] if body.get("dimensions") is None else [0.125] * body["dimensions"]
        return Response(orjson.dumps({"object": "list", "model": body["model"], "data": [
            {"object": "embedding", "index": index, "embedding": vector} for index in range(count)],
            "usage": {"prompt_tokens": 3, "total_tokens": 3}}), media_type="application/json")

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"]),
                                 Route("/v1/embeddings", self.embeddings, methods=["POST"])])
