"""Map an upstream's HTTP status to the gateway's error, the same for every client.

A client's own mistakes (400, 413, 422) are passed on with the upstream's
message; a 429 keeps its ``Retry-After`` but not its message, which is about
the gateway's provider account (OpenAI's names the organisation and its
limits), not the client's request; credentials or routing problems on our side
(401, 403, 404) and upstream failures become 502, never the client's fault.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import GatewayError, RateLimited, UpstreamFailed, UpstreamRejected, UpstreamTimeout

_PASSED_ON = frozenset({400, 409, 413, 415, 422})
# How OpenAI, Azure, vLLM and Anthropic word these refusals.
_CONTEXT_WINDOW = ("context_length_exceeded", "maximum context length", "context window", "prompt is too long",
                   "too many tokens")
_CONTENT_FILTER = ("content_filter", "content management policy", "content policy", "safety system")
_MESSAGE_LIMIT = 500


def upstream_message(body: bytes) -> str:
    """The upstream's own error message, if its body carries one, cut short."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:_MESSAGE_LIMIT].decode("utf-8", "replace").strip()
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])[:_MESSAGE_LIMIT]
    if isinstance(error, str):
        return error[:_MESSAGE_LIMIT]
    return ""


def status_error(target: str, status: int, message: str, retry_after: str | None = None) -> GatewayError:
    """The error to raise for an upstream answer with a non-2xx ``status``."""
    if status == 429:
        if retry_after:
            return RateLimited(f"upstream {target} is rate limited; retry after the time in the retry-after "
                               "header.", headers={"retry-after": retry_after})
        return RateLimited(f"upstream {target} is rate limited; retry later.")
    if status in _PASSED_ON:
        rejected = UpstreamRejected(message or f"upstream {target} rejected the request", status=status)
        lowered = message.lower()
        if any(marker in lowered for marker in _CONTEXT_WINDOW):
            rejected.trigger = "context_window"
        elif any(marker in lowered for marker in _CONTENT_FILTER):
            rejected.trigger = "content_filter"
        return rejected
    if status in (408, 504):
        return UpstreamTimeout(f"upstream {target} timed out (HTTP {status})")
    return UpstreamFailed(f"upstream {target} failed with HTTP {status}" + (f": {message}" if status >= 500 and message else ""))
