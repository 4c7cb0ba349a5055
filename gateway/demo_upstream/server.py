"""An OpenAI-compatible simulated provider, served on loopback for the embedded default.

It answers ``/v1/chat/completions`` (JSON and SSE, tools, n, JSON mode,
include_usage), ``/v1/embeddings`` and ``/v1/models`` with deterministic text,
real-looking token counts and latency scaled by ``latency_scale`` (0 for
benchmarks: a zero-delay upstream). Requests OpenAI would refuse get its 400
(``checks``). Like a real provider it generates the ``n`` choices side by side,
so ``n`` does not multiply the latency, and it stops waiting as soon as the
client leaves (``working`` counts the answers still being "generated").
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gateway.accounting.usage import estimate_prompt_tokens, estimate_tokens
from gateway.demo_upstream.answers import compose, tool_call
from gateway.demo_upstream.checks import Refusal, check_chat, check_embeddings
from gateway.demo_upstream.models import EMBEDDING_DIM, EMBEDDING_MODEL, MODELS, SimulatedModel
from gateway.errors import json_response


def _error(message: str, status: int, code: str, param: str | None = None) -> Response:
    return json_response({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}},
                 status)


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise Refusal("We could not parse the JSON body of your request.", "body") from exc
    if not isinstance(body, dict):
        raise Refusal("The request body must be a JSON object.", "body")
    return body


async def _client_left(request: Request) -> None:
    """Returns when the client disconnects (the body was read, so the next ASGI message can only be that)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _message(model: SimulatedModel, body: Mapping[str, Any]) -> dict[str, Any]:
    call = tool_call(body.get("tools") or (), body.get("tool_choice", "auto"))
    last_role = (body["messages"][-1] or {}).get("role")
    if call is not None and last_role != "tool":
        return {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_" + hashlib.sha256(call["name"].encode()).hexdigest()[:24], "type": "function",
            "function": {"name": call["name"], "arguments": orjson.dumps(call["arguments"]).decode()}}]}
    text = compose(model, body["messages"])
    if (body.get("response_format") or {}).get("type") in ("json_object", "json_schema"):
        text = orjson.dumps({"answer": text}).decode()
    return {"role": "assistant", "content": text}


def _generated_tokens(message: Mapping[str, Any]) -> int:
    calls = message.get("tool_calls") or ()
    return estimate_tokens(message.get("content") or "") + sum(
        estimate_tokens(c["function"]["arguments"]) for c in calls)


class DemoUpstream:
    def __init__(self, latency_scale: float = 1.0) -> None:
        self.latency_scale = latency_scale
        self.working = 0

    async def _wait(self, seconds: float) -> None:
        if self.latency_scale > 0:
            await asyncio.sleep(seconds * self.latency_scale)

    async def _generate(self, seconds: float, request: Request) -> bool:
        """Wait like a model generating its answer; False when the client left first (the work stops there)."""
        self.working += 1
        generating = asyncio.ensure_future(self._wait(seconds))
        leaving = asyncio.ensure_future(_client_left(request))
        try:
            done, _ = await asyncio.wait((generating, leaving), return_when=asyncio.FIRST_COMPLETED)
        finally:
            generating.cancel()
            leaving.cancel()
            self.working -= 1
        return generating in done

    async def chat(self, request: Request) -> Response:
        try:
            body = await _body(request)
            check_chat(body)
        except Refusal as refusal:
            return _error(refusal.message, 400, "invalid_value", refusal.param)
        name = body.get("model")
        model = MODELS.get(name) if isinstance(name, str) else None
        if model is None:
            return _error(f"The model '{name}' does not exist.", 404, "model_not_found", "model")
        messages = body["messages"]
        n = body.get("n") or 1
        message = _message(model, body)
        per_choice = _generated_tokens(message)
        usage = {"prompt_tokens": estimate_prompt_tokens(messages), "completion_tokens": per_choice * n}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        base = {"id": "chatcmpl-" + uuid.uuid4().hex[:24], "created": int(time.time()), "model": model.id,
                "system_fingerprint": "demo"}
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = self._chunks(model, base, message, n, finish, usage if include_usage else None)
            return StreamingResponse(chunks, media_type="text/event-stream")
        if not await self._generate(model.ttft_s + model.per_token_s * per_choice, request):
            return Response(status_code=499)  # nobody is listening any more
        choices = [{"index": i, "message": message, "logprobs": None, "finish_reason": finish} for i in range(n)]
        return json_response({**base, "object": "chat.completion", "choices": choices, "usage": usage})

    async def _chunks(self, model: SimulatedModel, base: dict[str, Any], message: dict[str, Any], n: int,
                      finish: str, usage: dict[str, Any] | None) -> AsyncIterator[bytes]:
        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return b"data: " + orjson.dumps({**base, "object": "chat.completion.chunk", "choices": choices,
                                             **extra}) + b"\n\n"

        await self._wait(model.ttft_s)
        yield event([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                     for i in range(n)])
        if message.get("tool_calls"):
            calls = [{"index": 0, **call} for call in message["tool_calls"]]
            yield event([{"index": i, "delta": {"tool_calls": calls}, "finish_reason": None} for i in range(n)])
        else:
            words = message["content"].split(" ")
            for start in range(0, len(words), 3):
                piece = " ".join(words[start:start + 3]) + (" " if start + 3 < len(words) else "")
                await self._wait(model.per_token_s * 3)
                yield event([{"index": i, "delta": {"content": piece}, "finish_reason": None} for i in range(n)])
        yield event([{"index": i, "delta": {}, "finish_reason": finish} for i in range(n)])
        if usage is not None:
            yield event([], usage=usage)
        yield b"data: [DONE]\n\n"

    async def embeddings(self, request: Request) -> Response:
        try:
            body = await _body(request)
            check_embeddings(body)
        except Refusal as refusal:
            return _error(refusal.message, 400, "invalid_value", refusal.param)
        if body.get("model") != EMBEDDING_MODEL:
            return _error("unknown embedding model", 404, "model_not_found")
        items = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": _pseudo_vector(str(item))}
                for i, item in enumerate(items)]
        tokens = sum(estimate_tokens(str(item)) for item in items)
        return json_response({"object": "list", "data": data, "model": EMBEDDING_MODEL,
                      "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def models(self, request: Request) -> Response:
        ids = [*MODELS, EMBEDDING_MODEL]
        return json_response({"object": "list", "data": [{"id": i, "object": "model", "created": 0, "owned_by": "demo"}
                                                 for i in ids]})

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
        ])


def _pseudo_vector(text: str) -> list[float]:
    """A unit vector derived from the text's hash: deterministic, not semantic."""
    raw = hashlib.shake_256(text.encode()).digest(EMBEDDING_DIM * 4)
    values = [v / 2**32 - 0.5 for v in struct.unpack(f"<{EMBEDDING_DIM}I", raw)]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]


def create_demo_app(latency_scale: float = 1.0) -> Starlette:
    return DemoUpstream(latency_scale).app()
