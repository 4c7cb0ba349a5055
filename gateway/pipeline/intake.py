"""Everything checked about a request before it is routed: key, size, JSON, schema, forbidden fields."""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from gateway.api_keys import ApiKey
from gateway.errors import (
    AuthenticationFailed,
    ClientClosedRequest,
    InvalidRequest,
    PayloadTooLarge,
    PermissionDenied,
    RequestTimeout,
    UnsupportedMediaType,
)
from gateway.protocol import forbidden_field
from gateway.settings import Settings

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Browsers answer this challenge by asking for a user name and password once, then send them with every
# request of the origin: the dashboard's way to present a key (the password; any user name).
BROWSER_CHALLENGE = {"www-authenticate": 'Basic realm="hybrid-gateway", charset="UTF-8"'}
_MAX_REPORTED_ERRORS = 5
Model = TypeVar("Model", bound=BaseModel)


def new_request_id() -> str:
    """The gateway's own id of a request: what every ledger, window, outcome and feedback record is keyed on.

    Unguessable (96 random bits), so no client can collide with, or claim, another request's records. The 12 hex
    digits before them are the milliseconds since the epoch, so ids sort by time: a table keyed on them (the
    capture store's) adds each new id at the end of its index, where random ids wrote a random page each.
    """
    return f"gw-{time.time_ns() // 1_000_000:012x}{secrets.token_hex(12)}"


def client_request_id(request: Request) -> str | None:
    """The caller's ``x-request-id`` when it is safe to echo and log: kept for correlation only, never as a key,
    since a caller may reuse one trace id over many calls (or pick another caller's)."""
    given = request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.fullmatch(given) else None


def _basic_password(credentials: str) -> str:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[2].strip()


def _bearer(request: Request, *, browser: bool = False) -> str:
    """The presented key; with ``browser``, HTTP Basic credentials whose password is the key also count."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if browser and scheme.lower() == "basic":
        key = _basic_password(key.strip())
    elif scheme.lower() != "bearer":
        key = ""
    if not key.strip():
        raise AuthenticationFailed("Missing API key: send 'Authorization: Bearer <key>'.",
                                   headers=BROWSER_CHALLENGE if browser else None)
    return key.strip()


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: ``owner``, the key's tag (16 hex digits of its digest; None while keys are off),
    stored with a request's experiment outcome so only the key that made a request may give feedback on it;
    ``key``, the named key with its limits (a structured keys file; None for a key of the plain list)."""

    owner: str | None = None
    key: ApiKey | None = None

    @property
    def name(self) -> str | None:
        return self.key.name if self.key is not None else None


ANONYMOUS = Caller()
"""The caller of every request while keys are off."""


def identify(request: Request, settings: Settings) -> Caller:
    """Client endpoints: open unless API keys are configured. Returns the caller (see ``Caller``).

    GET requests (reads without side effects, which CORS keeps other sites from reading) also
    take the key as a Basic password, so a browser can open the dashboard behind keys.
    """
    if not settings.api_key_digests:
        return ANONYMOUS
    browser = request.method == "GET"
    digest = settings.matching_digest(_bearer(request, browser=browser))
    if digest is None:
        raise AuthenticationFailed("Incorrect API key provided.", headers=BROWSER_CHALLENGE if browser else None)
    return Caller(digest[:16], settings.named_key(digest))


def authenticate(request: Request, settings: Settings) -> str | None:
    """``identify``'s owner tag, for the endpoints that need no more of the caller."""
    return identify(request, settings).owner


def authenticate_monitoring(request: Request, settings: Settings) -> None:
    """``/metrics`` and ``/dashboard``: like client endpoints, unless left open by ``monitoring_needs_key``."""
    if settings.edge.monitoring_needs_key:
        authenticate(request, settings)


def authenticate_admin(request: Request, settings: Settings) -> None:
    """Admin endpoints: closed unless admin keys are configured, and then only to them."""
    if not settings.admin_key_digests:
        raise PermissionDenied("The admin API is disabled: set HYBRID_GATEWAY_ADMIN_KEYS to enable it.")
    if not settings.key_allowed(_bearer(request), admin=True):
        raise AuthenticationFailed("Incorrect admin key provided.")


def _json_content_type(request: Request) -> None:
    """Only ``application/json`` (any parameters): what a browser may send cross-site without a
    CORS preflight (text/plain, forms, no type at all) is refused, so no other site can post here."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        shown = media_type or "none"
        raise UnsupportedMediaType(f"Content-Type {shown!r} is not supported: send the body as application/json.",
                                   param="content-type")


def _too_deep(raw: bytes, body: Any, limit: int) -> bool:
    """Whether arrays/objects nest deeper than ``limit``: orjson parses 1024 levels but serialises 255.

    A body with at most ``limit`` brackets cannot nest deeper, so ordinary requests skip the walk.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


async def _body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The whole body, refusing more than ``limit`` bytes and a client that takes over ``timeout_s`` to send it.

    A body that came with its headers is there at the first ``receive``; only a longer one starts the clock
    (an ``asyncio.timeout`` costs ~15,000 instructions, a tenth of the gateway's own per request).
    """
    receive = request.receive
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body"):
        whole: bytes = message.get("body", b"")
        if len(whole) > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.", headers={"connection": "close"})
        return whole
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s if message.get("more_body") else None):
            while True:
                if message["type"] == "http.disconnect":
                    raise ClientClosedRequest("The client disconnected before sending the whole request body.")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.",
                                          headers={"connection": "close"})
                chunks.append(chunk)
                if not message.get("more_body"):
                    return b"".join(chunks)
                message = await receive()
    except TimeoutError:
        raise RequestTimeout(f"The request body did not arrive within {timeout_s:g} s.",
                             headers={"connection": "close"}) from None


async def read_json(request: Request, settings: Settings) -> dict[str, Any]:
    """The body as a JSON object: JSON content type, size and time limits, nesting depth, no forbidden fields."""
    _json_content_type(request)
    limit = settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body of {declared} bytes exceeds the limit of {limit} bytes.",
                              headers={"connection": "close"})
    raw = await _body(request, limit, settings.edge.body_timeout_s)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc.args[0]}", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    depth = settings.edge.max_json_depth
    if _too_deep(raw, body, depth):
        raise InvalidRequest(f"The request body nests arrays/objects deeper than {depth} levels.", code="invalid_json")
    field = forbidden_field(body)
    if field is not None:
        raise InvalidRequest(f"'{field}' cannot be set by clients: the gateway chooses upstream connections "
                             "and credentials.", param=field, code="forbidden_parameter")
    return body


def validate(model: type[Model], body: dict[str, Any], at: tuple[str | int, ...] = ()) -> Model:
    """Check ``body`` against a protocol model; the error names the first offending parameter.

    ``at``: where ``body`` sits in the request, when it is a part checked on its own (``("input", 2)``)."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        param = ".".join(str(part) for part in (*at, *errors[0]["loc"]))
        detail = "; ".join(f"{'.'.join(str(p) for p in (*at, *e['loc']))}: {e['msg']}"
                           for e in errors[:_MAX_REPORTED_ERRORS])
        raise InvalidRequest(f"Invalid request: {detail}", param=param, code="invalid_parameter") from exc
