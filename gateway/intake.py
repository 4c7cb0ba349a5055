"""Everything checked about a request before it is routed: key, size, JSON, schema, forbidden fields."""

from __future__ import annotations

import re
import uuid
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from gateway.errors import AuthenticationFailed, InvalidRequest, PayloadTooLarge, PermissionDenied
from gateway.protocol import forbidden_field
from gateway.settings import Settings

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_MAX_REPORTED_ERRORS = 5
Model = TypeVar("Model", bound=BaseModel)


def request_id(request: Request) -> str:
    """The caller's ``x-request-id`` when it is safe to echo and log, else a fresh one."""
    given = request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.match(given) else uuid.uuid4().hex


def _bearer(request: Request) -> str:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise AuthenticationFailed("Missing API key: send 'Authorization: Bearer <key>'.")
    return key.strip()


def authenticate(request: Request, settings: Settings) -> None:
    """Client endpoints: open unless API keys are configured."""
    if settings.api_key_digests and not settings.key_allowed(_bearer(request)):
        raise AuthenticationFailed("Incorrect API key provided.")


def authenticate_admin(request: Request, settings: Settings) -> None:
    """Admin endpoints: closed unless admin keys are configured, and then only to them."""
    if not settings.admin_key_digests:
        raise PermissionDenied("The admin API is disabled: set HYBRID_GATEWAY_ADMIN_KEYS to enable it.")
    if not settings.key_allowed(_bearer(request), admin=True):
        raise AuthenticationFailed("Incorrect admin key provided.")


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object, refusing more than ``limit`` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body of {declared} bytes exceeds the limit of {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
        chunks.append(chunk)
    try:
        body = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc.args[0]}", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    field = forbidden_field(body)
    if field is not None:
        raise InvalidRequest(f"'{field}' cannot be set by clients: the gateway chooses upstream connections "
                             "and credentials.", param=field, code="forbidden_parameter")
    return body


def validate(model: type[Model], body: dict[str, Any]) -> Model:
    """Check ``body`` against a protocol model; the error names the first offending parameter."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        param = ".".join(str(part) for part in errors[0]["loc"])
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:_MAX_REPORTED_ERRORS])
        raise InvalidRequest(f"Invalid request: {detail}", param=param, code="invalid_parameter") from exc
