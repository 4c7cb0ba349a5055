"""Direct async HTTP client for OpenAI-compatible upstreams: the hot path.

OpenAI, Azure OpenAI, vLLM, TGI, Ollama, fine-tuned ``ft:`` models and the
demo upstream all speak OpenAI's wire format, so the gateway forwards bytes to
them itself: one pooled aiohttp session per process, request bodies serialised
once with orjson, SSE lines passed through as they arrive. aiohttp rather than
httpx: in one run on this machine a minimal proxy served 6,300 req/s at
concurrency 64 through aiohttp and 570 through httpx (docs/BENCHMARKS.md).

The URL and headers come from the target alone, never from the body. A
non-streamed answer is read up to ``max_reply_bytes`` and no further; an
embedding answer past ``_PARSE_WHOLE_BYTES`` is not parsed whole (orjson holds
the GIL, so even a worker thread would stall the event loop for the ~0.3 s a
40 MB reply takes): only its closing ``usage`` is read, which is all the
gateway accounts from.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson

from gateway.errors import ServiceUnavailable, UpstreamFailed, UpstreamTimeout, UpstreamUnreachable
from gateway.upstream.base import UpstreamReply
from gateway.upstream.status import status_error, upstream_message
from policies import Target

_DEFAULT_BASES = {"openai": "https://api.openai.com/v1", "ollama": "http://127.0.0.1:11434/v1"}
_JSON = "application/json"
_PARSE_WHOLE_BYTES = 1024 * 1024
_USAGE_TAIL_BYTES = 4096
_READ_CHUNK = 256 * 1024
Parse = Callable[[Target, bytes], dict[str, Any]]


def _whole(target: Target, body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UpstreamFailed(f"upstream {target.model} answered with invalid JSON") from exc
    if not isinstance(data, dict):
        raise UpstreamFailed(f"upstream {target.model} answered with a non-object JSON")
    return data


def _usage_only(target: Target, body: bytes) -> dict[str, Any]:
    """A large embedding answer's ``usage``, from its last bytes where OpenAI-compatible servers put it.

    ``{}`` when it is not there (the gateway then estimates the tokens itself and says so).
    """
    if len(body) <= _PARSE_WHOLE_BYTES:
        return _whole(target, body)
    if not body[:1] == b"{":
        raise UpstreamFailed(f"upstream {target.model} answered with a non-object JSON")
    tail = body[-_USAGE_TAIL_BYTES:]
    key = tail.rfind(b'"usage"')
    value = tail[tail.find(b":", key) + 1:].rstrip() if key >= 0 else b""
    try:
        usage = orjson.loads(value[:-1]) if value.endswith(b"}") else None  # without the answer's closing brace
    except orjson.JSONDecodeError:
        usage = None
    return {"usage": usage} if isinstance(usage, dict) else {}


class _Stream:
    def __init__(self, target: Target, response: aiohttp.ClientResponse) -> None:
        self._target = target
        self._response = response

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for data in self._response.content.iter_any():
                yield data
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout(f"upstream {self._target.model} stopped sending") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamFailed(f"upstream stream broke: {type(exc).__name__}") from exc

    async def aclose(self) -> None:
        self._response.release()
        self._response.close()


class OpenAICompatibleClient:
    """Speaks OpenAI's HTTP API directly; one instance per process, created inside the event loop."""

    def __init__(self, max_reply_bytes: int, max_connections: int = 1000) -> None:
        self._max_reply_bytes = max_reply_bytes
        connector = aiohttp.TCPConnector(limit=max_connections, ttl_dns_cache=300, keepalive_timeout=30)
        # No cookie jar: a cookie one upstream answer sets must not ride along on other clients' requests.
        self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    def _url(self, target: Target, endpoint: str) -> str:
        if target.provider == "azure":
            version = target.api_version or "2024-10-21"
            return f"{target.api_base}/openai/deployments/{target.model}/{endpoint}?api-version={version}"
        base = target.api_base or _DEFAULT_BASES.get(target.provider)
        if base is None:
            raise ServiceUnavailable(f"target for model {target.model} has no api_base")
        return f"{base}/{endpoint}"

    def _headers(self, target: Target) -> dict[str, str]:
        headers = {"content-type": _JSON, "accept": _JSON}
        if target.api_key_env is None:
            return headers
        key = os.environ.get(target.api_key_env)
        if not key:
            raise ServiceUnavailable(f"the credential variable {target.api_key_env} is not set on the gateway")
        if target.provider == "azure":
            headers["api-key"] = key
        else:
            headers["authorization"] = f"Bearer {key}"
        return headers

    async def _send(self, target: Target, endpoint: str, payload: dict[str, Any],
                    timeout: aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
        try:
            response = await self._session.post(self._url(target, endpoint), data=orjson.dumps(payload),
                                                headers=self._headers(target), timeout=timeout)
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout(f"upstream {target.model} timed out") from exc
        except aiohttp.ClientConnectionError as exc:
            raise UpstreamUnreachable(f"upstream {target.model} is unreachable: {type(exc).__name__}") from exc
        if response.status >= 400:
            try:
                body = await response.read()
            except (aiohttp.ClientError, TimeoutError):
                body = b""
            finally:
                response.release()
            raise status_error(target.model, response.status, upstream_message(body),
                               response.headers.get("retry-after"))
        return response

    async def _read(self, target: Target, response: aiohttp.ClientResponse) -> bytes:
        """The whole answer, refused as soon as it is known to be over ``max_reply_bytes``."""
        limit = self._max_reply_bytes
        too_large = UpstreamFailed(f"upstream {target.model} answered more than {limit} bytes "
                                   "(HYBRID_GATEWAY_MAX_UPSTREAM_REPLY_BYTES)")
        if response.content_length is not None and response.content_length > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(_READ_CHUNK):
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    async def _complete(self, target: Target, endpoint: str, payload: dict[str, Any], parse: Parse) -> UpstreamReply:
        timeout = aiohttp.ClientTimeout(total=target.timeout_s, sock_connect=target.connect_timeout_s)
        response = await self._send(target, endpoint, payload, timeout)
        try:
            body = await self._read(target, response)
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout(f"upstream {target.model} timed out") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamFailed(f"upstream {target.model} broke off its answer") from exc
        finally:
            response.release()  # closes the connection instead when the answer was not read to its end
        return UpstreamReply(body, parse(target, body))

    async def complete(self, target: Target, payload: dict[str, Any]) -> UpstreamReply:
        return await self._complete(target, "chat/completions", payload, _whole)

    async def embed(self, target: Target, payload: dict[str, Any]) -> UpstreamReply:
        return await self._complete(target, "embeddings", payload, _usage_only)

    async def open_stream(self, target: Target, payload: dict[str, Any]) -> _Stream:
        # The whole stream may last long; what must stay short is each wait for the next bytes.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=target.connect_timeout_s,
                                        sock_read=target.timeout_s)
        return _Stream(target, await self._send(target, "chat/completions", payload, timeout))

    async def aclose(self) -> None:
        await self._session.close()
