"""What every endpoint does alike: find the state, answer errors, set the gateway headers."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from gateway.accounting.ledger import RequestRecord
from gateway.errors import ClientClosedRequest, GatewayError, InternalError, error_response
from gateway.state import GatewayState

log = logging.getLogger("hybrid_gateway")


def state_of(request: Request) -> GatewayState:
    gateway: GatewayState = request.app.state.gateway
    return gateway


def _journey_headers(record: RequestRecord) -> dict[str, str]:
    """How many upstream attempts were made and which fallbacks were taken."""
    headers = {"x-gateway-attempts": str(record.attempts)} if record.attempts else {}
    if record.fallback:
        headers["x-gateway-fallback"] = record.fallback
    return headers


def _id_headers(record: RequestRecord) -> dict[str, str]:
    """The caller's id echoed (the gateway's when it sent none) and the gateway's, which feedback names."""
    return {"x-request-id": record.client_request_id or record.request_id,
            "x-gateway-request-id": record.request_id}


def _named(record: RequestRecord) -> str:
    """How logs name a request: the gateway's id, and the caller's for correlation."""
    given = record.client_request_id
    return f"{record.request_id} (x-request-id {given})" if given else record.request_id


def gateway_headers(record: RequestRecord, cost: str) -> dict[str, str]:
    headers = {
        **_id_headers(record),
        "x-gateway-route": record.route,
        "x-gateway-arm": record.arm,
        "x-gateway-target": record.target,
        "x-gateway-cost-usd": cost,
        "x-gateway-overhead-ms": f"{record.overhead_s() * 1000:.3f}",
    }
    headers.update(_journey_headers(record))
    if record.score is not None:
        headers["x-gateway-score"] = f"{record.score:.4f}"
    if record.rag is not None:
        headers["x-gateway-rag"] = record.rag
        headers["x-gateway-rag-ms"] = f"{record.rag_s * 1000:.3f}"
        if record.sources:
            headers["x-gateway-sources"] = record.sources
    if record.experiment:
        if record.feedback_token:
            headers["x-gateway-feedback-token"] = record.feedback_token
        headers["x-gateway-experiment"] = record.experiment
        headers["x-gateway-variant"] = record.variant
        headers["x-gateway-assignment"] = "keyed" if record.keyed else "unkeyed"
    if record.usage is not None and record.usage.estimated:
        headers["x-gateway-usage"] = "estimated"
    return headers


def failure(gateway: GatewayState, record: RequestRecord, exc: Exception) -> Response:
    """Account a failed request and render its error; unexpected exceptions become a bare 500."""
    if not isinstance(exc, GatewayError):
        log.exception("unhandled error in request %s", _named(record))
        exc = InternalError("The gateway failed to handle the request.")
    elif isinstance(exc, ClientClosedRequest):  # routine on any public endpoint: not an error of ours
        log.info("request %s: %s", _named(record), exc.message)
    record.status, record.error_code = exc.status, exc.code
    gateway.ledger.close(record)
    headers = _id_headers(record)
    if record.route:
        headers.update({"x-gateway-route": record.route, "x-gateway-arm": record.arm,
                        "x-gateway-target": record.target})
    headers.update(_journey_headers(record))
    return error_response(exc, headers)

