"""The direct upstream client keeps no cookies: one caller's upstream session never rides on another's request."""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.upstream.openai_compat import OpenAICompatibleClient
from policies import Target
from tests.support.servers import ServerThread


def test_a_cookie_an_upstream_sets_is_not_sent_back() -> None:
    seen: list[str | None] = []

    async def completions(request: Request) -> JSONResponse:
        seen.append(request.headers.get("cookie"))
        response = JSONResponse({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
        response.set_cookie("session", "first-callers-session")
        return response

    server = ServerThread(Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])).start()
    target = Target(provider="vllm", model="m", api_base=f"http://localhost:{server.port}/v1")  # a name: cookie jars ignore IP hosts

    async def two_calls() -> None:
        client = OpenAICompatibleClient(max_reply_bytes=1 << 20)
        try:
            for _ in range(2):
                reply = await client.complete(target, {"model": "m", "messages": []})
                assert reply.data["usage"]["prompt_tokens"] == 1
        finally:
            await client.aclose()

    try:
        asyncio.run(two_calls())
    finally:
        server.stop()
    assert seen == [None, None]
