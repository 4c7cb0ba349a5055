"""The OpenAPI 3.1 document of the served routes, built once from a table of what each one takes and answers.

The endpoints stay plain Starlette routes taking the raw request, so a request
costs no dependency solving, body model or response serialisation. FastAPI
writes the document from ``APIRoute`` declarations over the same handlers
(never served); the table below adds what it cannot see in a handler that
takes a ``Request``: the request body, path parameters, security, non-JSON
replies and every error status, each with OpenAI's envelope
(:class:`gateway.api.schemas.ErrorResponse`). A served route missing from the
table is a programming error and fails at build time, so the document cannot
silently fall behind the routes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.api import schemas
from gateway.api.experiments import FeedbackRequest
from gateway.api.knowledge import Query, Upsert
from gateway.dashboard import ASSETS

TITLE = "hybrid-gateway"
SECURITY_SCHEME = "bearer"
_ERRORS = {
    400: "Invalid request: bad JSON, a parameter of the wrong type or value, a forbidden field.",
    401: "Missing or wrong API key (only when keys are configured).",
    403: "The admin API without admin keys configured.",
    404: "Unknown model, experiment or path (or a model the key may not call); a request id unknown, or not made "
         "with this key or feedback token.",
    409: "The request already has feedback (send replace: true to change it).",
    408: "The headers or the body did not arrive in time.",
    413: "Request body over the size limit.",
    415: "A JSON endpoint called without an application/json body.",
    421: "Host header outside the allowlist.",
    422: "The upstream refused the request; its message is kept.",
    429: "The upstream's rate limit, with its retry-after; a named key over its requests or tokens per minute "
         "(rate_limit_exceeded, retry-after) or its monthly budget (insufficient_quota).",
    431: "Request line and headers over the size or count limit.",
    500: "The gateway failed to handle the request (a bug).",
    502: "The upstream failed or is unreachable.",
    503: "Overloaded (retry-after), a dependency or credential missing, or every target's breaker open.",
    504: "The upstream did not answer within the target's timeout or the route's deadline.",
}
# Any request: slow or huge headers, the Host allowlist, a bug; and the concurrency limit, which probes skip.
_PROBE = (408, 421, 431, 500)
_EDGE = (*_PROBE, 503)
_JSON_BODY = (400, 413, 415)
_UPSTREAM = (404, 422, 429, 502, 504)
_TEXT = {"schema": {"type": "string"}}
# On every served completion and embedding (docs/api.md lists the optional others: score, rag, experiment, ...).
_SERVED_HEADERS = {name: {"description": meaning, "schema": {"type": "string"}, "required": True} for name, meaning in (
    ("x-request-id", "The caller's x-request-id when it is a safe token (echoed for correlation), else the "
     "gateway's id."),
    ("x-gateway-request-id", "The gateway's own id of the request, which feedback names."),
    ("x-gateway-route", "The route that served the request (the target's name for an exposed target)."),
    ("x-gateway-arm", "prompted, fine_tuned, or direct for an exposed target."),
    ("x-gateway-target", "The target that answered."),
    ("x-gateway-cost-usd", "Cost of the upstream call; unknown without a price; pending on streams."),
    ("x-gateway-overhead-ms", "Time the gateway itself spent, excluding the upstream."))}
# On the answers to a named key with limits (docs/api.md, "Keys, limits and budgets"), as OpenAI sends them.
_RATE_HEADERS = {f"x-ratelimit-{what}-{unit}": {"description": meaning.format(unit=unit), "schema": {"type": "string"}}
                 for unit in ("requests", "tokens") for what, meaning in (
                     ("limit", "The key's {unit} per minute."),
                     ("remaining", "The {unit} the key may still use in the sliding minute."),
                     ("reset", "Until the key's window of {unit} is empty again, e.g. 1m0s or 250ms."))}
_ENVELOPE = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
# Described by reference only (errors, stream events): added to the components with the request bodies.
_REFERENCED: tuple[type[BaseModel], ...] = (schemas.ErrorResponse, schemas.ChatCompletionChunk,
                                             schemas.ResponseStreamEvent)


@dataclass(frozen=True)
class Operation:
    """What one route takes and answers, beyond what FastAPI reads from its handler."""

    summary: str
    tag: str
    reply: type[BaseModel] | None
    errors: tuple[int, ...] = ()
    body: type[BaseModel] | None = None
    auth: bool = True
    """Needs ``Authorization: Bearer <key>`` when keys are configured (admin keys for the admin API)."""
    response_class: type[Response] = JSONResponse
    responses: dict[int | str, dict[str, Any]] = field(default_factory=dict)


def _statuses(*groups: Sequence[int]) -> tuple[int, ...]:
    return tuple(sorted({status for group in groups for status in group}))


_ADMIN = _statuses(_EDGE, _JSON_BODY, (401, 403, 404))
OPERATIONS: dict[tuple[str, str], Operation] = {
    ("POST", "/v1/chat/completions"): Operation(
        "Create a chat completion (JSON, or text/event-stream with stream: true)", "OpenAI",
        schemas.ChatCompletion, _statuses(_EDGE, _JSON_BODY, _UPSTREAM, (401,)),
        schemas.CreateChatCompletionRequest,
        responses={200: {"headers": {**_SERVED_HEADERS, **_RATE_HEADERS}, "content": {"text/event-stream": {"schema": {
            "type": "string", "description": "Server-sent events: `data: <ChatCompletionChunk>` lines, then "
            "`data: [DONE]`, or `data: <ErrorResponse>` if the stream fails after it started."}}}}}),
    ("POST", "/v1/responses"): Operation(
        "Create a response (Responses API, stateless; JSON, or text/event-stream with stream: true)", "OpenAI",
        schemas.ResponseObject, _statuses(_EDGE, _JSON_BODY, _UPSTREAM, (401,)), schemas.CreateResponseRequest,
        responses={200: {"headers": _SERVED_HEADERS, "content": {"text/event-stream": {"schema": {
            "type": "string", "description": "Server-sent events: `event: <type>` and `data: <ResponseStreamEvent>`, "
            "from response.created to response.completed (or response.incomplete, or error and response.failed)."
            }}}}}),
    ("POST", "/v1/embeddings"): Operation(
        "Create embeddings with an exposed embedding target", "OpenAI", schemas.CreateEmbeddingResponse,
        _statuses(_EDGE, _JSON_BODY, _UPSTREAM, (401,)), schemas.CreateEmbeddingRequest,
        responses={200: {"headers": {**_SERVED_HEADERS, **_RATE_HEADERS}}}),
    ("GET", "/v1/models"): Operation("List the route names and exposed targets", "OpenAI", schemas.ModelList,
                                     _statuses(_EDGE, (401,))),
    ("GET", "/v1/models/{model:path}"): Operation("Retrieve a route or exposed target", "OpenAI", schemas.Model,
                                                  _statuses(_EDGE, (401, 404))),
    ("POST", "/v1/feedback"): Operation(
        "Record feedback on an experiment's request", "Experiments", schemas.FeedbackAccepted,
        _statuses(_EDGE, _JSON_BODY, (401, 404, 409)), FeedbackRequest),
    ("GET", "/v1/experiments/{name}"): Operation("An experiment's report", "Experiments",
                                                 schemas.ExperimentReport, _statuses(_EDGE, (401, 404))),
    ("GET", "/v1/economics"): Operation("The live break-even per route", "Economics", schemas.Economics,
                                        _statuses(_EDGE, (401,))),
    ("GET", "/v1/ledger"): Operation("Request, token and cost totals", "Economics", schemas.Ledger,
                                     _statuses(_EDGE, (401,))),
    ("GET", "/v1/routes"): Operation("Each route's classifier, live threshold and realised share", "Routing",
                                     schemas.RouteViews, _statuses(_EDGE, (401,))),
    ("POST", "/admin/knowledge/{collection}/documents"): Operation(
        "Upsert documents into a collection (admin keys)", "Knowledge admin", schemas.IngestResult, _ADMIN,
        Upsert),
    ("GET", "/admin/knowledge/{collection}/sources"): Operation(
        "List a collection's sources (admin keys)", "Knowledge admin", schemas.SourceList,
        _statuses(_EDGE, (400, 401, 403, 404))),
    ("DELETE", "/admin/knowledge/{collection}/sources/{source:path}"): Operation(
        "Delete a source's chunks (admin keys)", "Knowledge admin", schemas.IngestResult,
        _statuses(_EDGE, (400, 401, 403, 404))),
    ("POST", "/admin/knowledge/{collection}/query"): Operation(
        "Query a collection (admin keys)", "Knowledge admin", schemas.QueryResult, _ADMIN, Query),
    ("GET", "/healthz"): Operation("Liveness", "Operations", schemas.Health, _PROBE, auth=False),
    ("GET", "/readyz"): Operation(
        "Readiness: 503 until every dependency answered once, then 200 (ready or degraded)", "Operations",
        schemas.Readiness, _PROBE, auth=False,
        responses={503: {"model": schemas.Readiness, "description": "Not ready yet."}}),
    ("GET", "/metrics"): Operation(
        "Prometheus metrics (a key when keys are configured, unless monitoring is left open)", "Operations",
        None, _statuses(_PROBE, (401,)), response_class=PlainTextResponse),
    ("GET", "/dashboard"): Operation("The built-in dashboard page", "Operations", None, _statuses(_EDGE, (401,)),
                                     response_class=HTMLResponse),
    ("GET", "/dashboard/{asset}"): Operation(
        "The dashboard's script and style sheet", "Operations", None, _statuses(_EDGE, (401, 404)),
        response_class=Response,
        responses={200: {"content": {media.partition(";")[0]: _TEXT for name, media in ASSETS.items()
                                     if name != "index.html"}}}),
}


def _extra(route: Route, operation: Operation) -> dict[str, Any]:
    """What the handler's signature cannot tell FastAPI: body, path parameters, security."""
    extra: dict[str, Any] = {}
    if operation.body is not None:
        extra["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{operation.body.__name__}"}}}}
    if route.param_convertors:
        extra["parameters"] = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                               for name in route.param_convertors]
    if operation.auth:
        extra["security"] = [{SECURITY_SCHEME: []}]
    return extra


def _declaration(route: Route, method: str, operation: Operation) -> APIRoute:
    # The envelope's content is spelled out, since a ``model`` would take the route's (e.g. text/plain) media type.
    errors: dict[int | str, dict[str, Any]] = {
        status: {"description": _ERRORS[status], "content": _ENVELOPE} for status in operation.errors}
    return APIRoute(route.path, route.endpoint, methods=[method], response_model=operation.reply,
                    summary=operation.summary, tags=[operation.tag], response_class=operation.response_class,
                    responses={**errors, **operation.responses}, openapi_extra=_extra(route, operation))


def _referenced_schemas() -> dict[str, Any]:
    """JSON schemas of every request body and of ``_REFERENCED``, named as the ``$ref``s above expect."""
    bodies = sorted({op.body for op in OPERATIONS.values() if op.body is not None}, key=lambda m: m.__name__)
    _, top = models_json_schema([(body, "validation") for body in bodies] +
                                [(model, "serialization") for model in _REFERENCED],
                                ref_template="#/components/schemas/{model}")
    return dict(top.get("$defs", {}))


def document(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document of ``routes``; every plain ``Route`` must have an entry in ``OPERATIONS``."""
    declarations = []
    for route in routes:
        if not isinstance(route, Route) or not route.include_in_schema:
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            operation = OPERATIONS.get((method, route.path))
            if operation is None:
                raise LookupError(f"{method} {route.path} is served but not described in gateway.api.openapi")
            declarations.append(_declaration(route, method, operation))
    spec = get_openapi(title=TITLE, version=version("hybrid-gateway"), routes=declarations, description=(
        "OpenAI-compatible LLM gateway. Every error answers OpenAI's envelope; docs/api.md lists the limits, "
        "headers and error codes."))
    components = spec.setdefault("components", {})
    known = components.setdefault("schemas", {})
    for name, schema in _referenced_schemas().items():
        if known.setdefault(name, schema) != schema:
            raise ValueError(f"two different schemas are both named {name}")
    components["securitySchemes"] = {SECURITY_SCHEME: {
        "type": "http", "scheme": "bearer",
        "description": "A client key (HYBRID_GATEWAY_API_KEYS), or an admin key on /admin; only checked when "
                       "keys are configured."}}
    return spec
