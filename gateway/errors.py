"""The gateway's one exception tree, and the one place that renders it (and any JSON body: ``json_response``).

Every failure a client can see is raised as a ``GatewayError`` and rendered as
OpenAI's error envelope, ``{"error": {"message", "type", "param", "code"}}``,
so SDKs raise their usual typed exceptions. The tree splits on who is at
fault, like ``httpx/_exceptions.py``::

    GatewayError
    ├── ClientError (4xx: the request is wrong)
    │   ├── InvalidRequest          400 invalid_request_error
    │   ├── AuthenticationFailed    401 authentication_error
    │   ├── PermissionDenied        403 permission_error
    │   ├── ModelNotFound           404 model_not_found
    │   ├── RequestTimeout          408 request_timeout (the body did not arrive in time)
    │   ├── PayloadTooLarge         413 request_too_large
    │   ├── UnsupportedMediaType    415 unsupported_media_type (a JSON endpoint without a JSON body)
    │   ├── MisdirectedRequest      421 host_not_allowed (Host header outside the allowlist)
    │   ├── RateLimited             429 rate_limit_exceeded (upstream 429 passed on; a key over its rpm/tpm)
    │   ├── QuotaExceeded           429 insufficient_quota (a key that spent its monthly budget)
    │   ├── UpstreamRejected        4xx passed on from the upstream (its message kept)
    │   └── ClientClosedRequest     499 client_closed_request (the client left; nobody reads it)
    └── ServerError (5xx: we or the upstream failed)
        ├── UpstreamFailed          502 upstream_error
        ├── UpstreamUnreachable     502 upstream_connection_error
        ├── UpstreamTimeout         504 upstream_timeout
        ├── ServiceUnavailable      503 service_unavailable
        │   └── Overloaded          503 overloaded (the process is at its concurrency limit)
        └── InternalError           500 internal_error

Messages never carry tracebacks, file paths or credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

_MAX_MESSAGE = 2000


class GatewayError(Exception):
    """Base of every error the gateway returns to a client."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None
    # Why an upstream attempt failed, in the policy's vocabulary (policies.schema.Trigger); None: not upstream.
    trigger: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message[:_MAX_MESSAGE]
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})

    def envelope(self) -> dict[str, object]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class ClientError(GatewayError):
    status = 400
    type = "invalid_request_error"


class InvalidRequest(ClientError):
    code = "invalid_request"


class AuthenticationFailed(ClientError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(ClientError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class ModelNotFound(ClientError):
    status = 404
    code = "model_not_found"


class NotFound(ClientError):
    status = 404
    code = "not_found"


class MethodNotAllowed(ClientError):
    status = 405
    code = "method_not_allowed"


class RequestTimeout(ClientError):
    status = 408
    code = "request_timeout"


class PayloadTooLarge(ClientError):
    status = 413
    code = "request_too_large"


class UnsupportedMediaType(ClientError):
    status = 415
    code = "unsupported_media_type"


class MisdirectedRequest(ClientError):
    status = 421
    code = "host_not_allowed"


class ClientClosedRequest(ClientError):
    """The client disconnected before the gateway could answer: its fault, never a server error.

    499 is nginx's status for this; it reaches metrics and the access log, not the gone client.
    """

    status = 499
    code = "client_closed_request"


class RateLimited(ClientError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"
    trigger = "rate_limit"

    @property
    def retry_after_s(self) -> float | None:
        """The upstream's Retry-After in seconds, when given as a number."""
        try:
            return max(float(self.headers.get("retry-after", "")), 0.0)
        except ValueError:
            return None


class QuotaExceeded(ClientError):
    """A key's monthly budget is spent: OpenAI's answer to an account out of credit, which its SDKs raise as
    ``RateLimitError`` (retrying it is pointless until the month turns: ``x-should-retry: false``)."""

    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"


class UpstreamRejected(ClientError):
    """The upstream refused the request as invalid; its status and message are passed on.

    ``trigger`` is set when the refusal is one a fallback can cure (a context window
    or content filter of this particular model).
    """

    code = "upstream_rejected"


class ServerError(GatewayError):
    status = 500
    type = "server_error"


class UpstreamFailed(ServerError):
    status = 502
    code = "upstream_error"
    trigger = "server_error"


class UpstreamUnreachable(ServerError):
    status = 502
    code = "upstream_connection_error"
    trigger = "connection"


class UpstreamTimeout(ServerError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"
    trigger = "timeout"


class CircuitOpen(ServerError):
    """Every target of the chain was skipped by an open circuit breaker."""

    status = 503
    code = "circuit_open"
    trigger = "circuit_open"


class ServiceUnavailable(ServerError):
    status = 503
    code = "service_unavailable"


class Overloaded(ServiceUnavailable):
    code = "overloaded"


class InternalError(ServerError):
    code = "internal_error"


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """Any JSON body the gateway (or its demo upstream) answers with, serialised by orjson."""
    return Response(orjson.dumps(data), status_code=status, headers=headers, media_type="application/json")


def error_response(exc: GatewayError, headers: Mapping[str, str] | None = None) -> Response:
    """Render ``exc`` as a JSON response with OpenAI's envelope."""
    return json_response(exc.envelope(), exc.status, {**exc.headers, **(headers or {})})


def sse_error_event(exc: GatewayError) -> bytes:
    """Render ``exc`` as the SSE event that ends a stream that already started.

    OpenAI's SDKs raise ``APIError`` on a ``data:`` event carrying an ``error`` key,
    so a failure mid-stream is loud rather than a silent truncation.
    """
    return b"data: " + orjson.dumps(exc.envelope()) + b"\n\n"
