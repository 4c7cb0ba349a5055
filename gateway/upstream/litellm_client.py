"""litellm adapter for providers that do not speak OpenAI's wire format (Anthropic, Gemini, Bedrock, ...).

``import litellm`` costs ~6 s and each call ~6 ms of CPU, so it is imported
only when a policy names such a provider (``warm_up`` in the background at
start-up) and never sits on the OpenAI-compatible hot path. Its answers are
normalised to OpenAI's JSON and SSE so the rest of the gateway sees one format.

litellm takes its switches as keyword arguments beside the request's fields
(``api_base``, ``extra_headers``, ``fallbacks``, ``mock_response``, ...), so a
client's body must never be splatted into the call: only OpenAI's own request
fields are passed, anything else is refused before a byte leaves. litellm would
also download ``http://`` image URLs itself; that is switched off, so the
gateway never fetches a URL a client chose.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import re
from collections.abc import AsyncIterator, Mapping
from types import ModuleType
from typing import Any

import httpx
import orjson

from gateway.errors import (
    GatewayError,
    InvalidRequest,
    ServiceUnavailable,
    UpstreamFailed,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from gateway.protocol import CHAT_FIELDS, EMBEDDING_FIELDS
from gateway.upstream.base import UpstreamReply
from gateway.upstream.status import status_error, upstream_message
from policies import Target

_MODULE: ModuleType | None = None


def _litellm() -> ModuleType:
    global _MODULE  # a process-wide import cache, like importlib's own
    if _MODULE is None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        os.environ.setdefault("MAX_IMAGE_URL_DOWNLOAD_SIZE_MB", "0")  # read once, at import: no image fetches
        _MODULE = importlib.import_module("litellm")
    return _MODULE


async def warm_up() -> None:
    """Import litellm in a worker thread so the first request does not pay for it."""
    await asyncio.to_thread(_litellm)


# litellm prefixes its messages with its class names ("litellm.BadRequestError: AnthropicException - ").
_LITELLM_PREFIX = re.compile(r"^(?:litellm\.\w+:\s*)+")


def _provider_response(exc: BaseException) -> httpx.Response | None:
    """The provider's own HTTP error answer, found down ``exc``'s cause chain.

    litellm re-raises an upstream's HTTP error as its own exception whose
    ``response`` is a placeholder without body or headers; the real answer, with
    the provider's error message and its ``Retry-After``, stays on the
    ``httpx.HTTPStatusError`` it was raised from.
    """
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, httpx.HTTPStatusError):
            return link.response
        link = link.__cause__ or link.__context__
    return None


def _status_error(target: Target, exc: Exception, status: int) -> GatewayError:
    """An upstream's HTTP error status, with the provider's message and ``Retry-After`` when it sent them.

    Without the provider's answer, a client error keeps the first line of
    litellm's own message (e.g. an unsupported parameter); a server error keeps
    none, since litellm's text can carry a traceback with file paths.
    """
    response = _provider_response(exc)
    if response is not None:
        message = upstream_message(response.content)
        headers: Mapping[str, str] | None = response.headers
    else:
        text = str(getattr(exc, "message", "") or "")
        message = _LITELLM_PREFIX.sub("", text.strip().split("\n", 1)[0])[:500] if status < 500 else ""
        placeholder = getattr(exc, "response", None)
        headers = getattr(exc, "litellm_response_headers", None) or getattr(placeholder, "headers", None)
    retry_after = headers.get("retry-after") if isinstance(headers, Mapping) else None
    return status_error(target.model, status, message, retry_after)


def _translate(target: Target, exc: Exception) -> GatewayError:
    """litellm's exceptions into the gateway's, most specific first."""
    module = _litellm()
    if isinstance(exc, module.ImageFetchError):
        return InvalidRequest(f"The gateway does not download image URLs for {target.model}: send the image as a "
                              "data: URL.", param="messages", code="image_url_not_fetched")
    if isinstance(exc, module.Timeout):
        return UpstreamTimeout(f"upstream {target.model} timed out")
    if isinstance(exc, module.APIConnectionError):
        return UpstreamUnreachable(f"upstream {target.model} is unreachable")
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return _status_error(target, exc, status)
    return UpstreamFailed(f"upstream {target.model} failed: {type(exc).__name__}")


# OpenAI's ``metadata`` tags stored completions, which these providers do not have, and litellm reads the
# same name as its own logging settings: dropped rather than refused, since the gateway's retrieval filters use it.
_DROPPED = frozenset({"metadata"})


def _arguments(target: Target, payload: dict[str, Any], fields: frozenset[str]) -> dict[str, Any]:
    """The call's keyword arguments: the payload's OpenAI ``fields`` only, then the target's own settings."""
    unknown = next((key for key in payload if key not in fields), None)
    if unknown is not None:
        raise InvalidRequest(f"'{unknown}' is not an OpenAI request parameter; target {target.model} accepts only "
                             "OpenAI's documented parameters.", param=unknown, code="unsupported_parameter")
    arguments = {key: value for key, value in payload.items() if key not in _DROPPED}
    arguments.update(model=f"{target.provider}/{target.model}", timeout=target.timeout_s, num_retries=0)
    if target.api_base:
        arguments["api_base"] = target.api_base
    if target.api_key_env:
        key = os.environ.get(target.api_key_env)
        if not key:
            raise ServiceUnavailable(f"the credential variable {target.api_key_env} is not set on the gateway")
        arguments["api_key"] = key
    return arguments


class _Stream:
    def __init__(self, target: Target, chunks: Any) -> None:
        self._target = target
        self._chunks = chunks

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._chunks:
                yield b"data: " + orjson.dumps(chunk.model_dump(exclude_none=True)) + b"\n\n"
        except GatewayError:
            raise
        except Exception as exc:  # litellm raises its own tree; translated at this boundary
            raise _translate(self._target, exc) from exc
        yield b"data: [DONE]\n\n"

    async def aclose(self) -> None:
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            await close()


class LiteLLMClient:
    async def _call(self, target: Target, payload: dict[str, Any], call: str) -> Any:
        fields = EMBEDDING_FIELDS if call == "aembedding" else CHAT_FIELDS
        arguments = _arguments(target, payload, fields)
        module = await asyncio.to_thread(_litellm)
        try:
            return await getattr(module, call)(**arguments)
        except GatewayError:
            raise
        except Exception as exc:  # litellm raises its own tree; translated at this boundary
            raise _translate(target, exc) from exc

    async def complete(self, target: Target, payload: dict[str, Any]) -> UpstreamReply:
        data = (await self._call(target, {**payload, "stream": False}, "acompletion")).model_dump()
        return UpstreamReply(orjson.dumps(data), data)

    async def embed(self, target: Target, payload: dict[str, Any]) -> UpstreamReply:
        data = (await self._call(target, payload, "aembedding")).model_dump()
        return UpstreamReply(orjson.dumps(data), data)

    async def open_stream(self, target: Target, payload: dict[str, Any]) -> _Stream:
        return _Stream(target, await self._call(target, {**payload, "stream": True}, "acompletion"))

    async def aclose(self) -> None:
        return None
