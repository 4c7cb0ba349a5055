"""Direct async HTTP client for OpenAI-compatible upstreams: the hot path.

OpenAI, Azure OpenAI, vLLM, TGI, Ollama, fine-tuned ``ft:`` models and the
demo upstream all speak OpenAI's wire format, so the gateway forwards bytes to
them itself over ``gateway.upstream.http1``'s pooled keep-alive connections:
request bodies serialised once with orjson, SSE bytes passed through as they
arrive. A general HTTP client costs more than the rest of the gateway per
proxied request (httpx served a tenth of aiohttp's rate on this machine, and
aiohttp itself was 35-49% of a worker's CPU: docs/BENCHMARKS.md).

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

import orjson

from gateway.errors import ServiceUnavailable, UpstreamFailed, UpstreamTimeout, UpstreamUnreachable
from gateway.upstream import http1
from gateway.upstream.base import UpstreamReply
from gateway.upstream.status import status_error, upstream_message
from policies import Target

_DEFAULT_BASES = {"openai": "https://api.openai.com/v1", "ollama": "http://127.0.0.1:11434/v1"}
_PARSE_WHOLE_BYTES = 1024 * 1024
_USAGE_TAIL_BYTES = 4096
_ERROR_BODY_BYTES = 64 * 1024  # an error answer is read for its message only
_IDLE_S = 30.0  # how long an idle keep-alive connection is kept for reuse
_FIXED_HEADERS = b"content-type: application/json\r\naccept: application/json\r\nuser-agent: hybrid-gateway\r\n"
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
    def __init__(self, target: Target, response: http1.Response) -> None:
        self._target = target
        self._response = response

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for data in self._response.chunks():
                yield data
        except TimeoutError as exc:
            raise UpstreamTimeout(f"upstream {self._target.model} stopped sending") from exc
        except (http1.ConnectionBroken, http1.ConnectFailed) as exc:
            raise UpstreamFailed(f"upstream stream broke: {exc}") from exc

    async def aclose(self) -> None:
        self._response.release()  # closes the connection instead when the stream was not read to its end


class OpenAICompatibleClient:
    """Speaks OpenAI's HTTP API directly; one instance per process, created inside the event loop."""

    def __init__(self, max_reply_bytes: int, max_connections: int = 1000) -> None:
        self._max_reply_bytes = max_reply_bytes
        # No cookies are kept: a cookie one upstream answer sets must not ride along on other clients' requests.
        self._pool = http1.Pool(max_connections, _IDLE_S)

    def _url(self, target: Target, endpoint: str) -> str:
        if target.provider == "azure":
            version = target.api_version or "2024-10-21"
            return f"{target.api_base}/openai/deployments/{target.model}/{endpoint}?api-version={version}"
        base = target.api_base or _DEFAULT_BASES.get(target.provider)
        if base is None:
            raise ServiceUnavailable(f"target for model {target.model} has no api_base")
        return f"{base}/{endpoint}"

    def _credential(self, target: Target) -> bytes:
        """The target's credential header line, read from the environment on every call so rotation applies."""
        if target.api_key_env is None:
            return b""
        key = os.environ.get(target.api_key_env)
        if not key:
            raise ServiceUnavailable(f"the credential variable {target.api_key_env} is not set on the gateway")
        if "\r" in key or "\n" in key or not key.isascii():
            raise ServiceUnavailable(f"the credential variable {target.api_key_env} holds a line break or non-ASCII")
        name = "api-key: " if target.provider == "azure" else "authorization: Bearer "
        return f"{name}{key}\r\n".encode("ascii")

    async def _send(self, target: Target, endpoint: str, payload: dict[str, Any], *, stream: bool) -> http1.Response:
        try:
            origin = http1.origin_of(self._url(target, endpoint))
        except ValueError as exc:
            raise ServiceUnavailable(f"target for model {target.model} has an invalid api_base") from exc
        body = orjson.dumps(payload)
        data = http1.encode(b"POST", origin, _FIXED_HEADERS + self._credential(target), body)
        try:
            response = await self._pool.request(
                origin, data, body_limit=0 if stream else self._max_reply_bytes,
                total_s=None if stream else target.timeout_s, quiet_s=target.timeout_s,
                connect_s=target.connect_timeout_s)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"upstream {target.model} timed out") from exc
        except http1.ConnectFailed as exc:
            raise UpstreamUnreachable(f"upstream {target.model} is unreachable: {exc}") from exc
        except http1.ConnectionBroken as exc:
            raise UpstreamFailed(f"upstream {target.model} broke off its answer: {exc}") from exc
        except http1.BodyTooLarge as exc:
            raise self._too_large(target) from exc
        if response.status >= 400:
            try:
                error = await response.read(_ERROR_BODY_BYTES)
            except (TimeoutError, http1.ConnectionBroken, http1.BodyTooLarge, http1.ConnectFailed):
                error = b""
            finally:
                response.release()
            raise status_error(target.model, response.status, upstream_message(error),
                               response.headers.get("retry-after"))
        return response

    def _too_large(self, target: Target) -> UpstreamFailed:
        return UpstreamFailed(f"upstream {target.model} answered more than {self._max_reply_bytes} bytes "
                              "(HYBRID_GATEWAY_MAX_UPSTREAM_REPLY_BYTES)")

    async def _complete(self, target: Target, endpoint: str, payload: dict[str, Any], parse: Parse) -> UpstreamReply:
        response = await self._send(target, endpoint, payload, stream=False)
        try:
            body = await response.read(self._max_reply_bytes)
        except http1.BodyTooLarge as exc:
            raise self._too_large(target) from exc
        except TimeoutError as exc:
            raise UpstreamTimeout(f"upstream {target.model} timed out") from exc
        except (http1.ConnectionBroken, http1.ConnectFailed) as exc:
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
        return _Stream(target, await self._send(target, "chat/completions", payload, stream=True))

    async def aclose(self) -> None:
        self._pool.close()
