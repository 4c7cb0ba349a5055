"""What every endpoint does alike: find the state, answer errors, set the gateway headers."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from gateway.accounting.completion import (
    NOTHING_DELIVERED,
    UNROUTED,
    Arrival,
    Completion,
    Delivery,
    Routing,
    finish,
    format_calls,
)
from gateway.accounting.usage import Usage, format_cost
from gateway.errors import ClientClosedRequest, GatewayError, InternalError, error_response
from gateway.state import GatewayState

log = logging.getLogger("hybrid_gateway")


def state_of(request: Request) -> GatewayState:
    gateway: GatewayState = request.app.state.gateway
    return gateway


def _delivery_headers(delivery: Delivery) -> dict[str, str]:
    """How many upstream attempts were made and which fallbacks were taken."""
    headers = {"x-gateway-attempts": str(delivery.attempts)} if delivery.attempts else {}
    if delivery.fallback:
        headers["x-gateway-fallback"] = delivery.fallback
    return headers


def _id_headers(arrival: Arrival) -> dict[str, str]:
    """The caller's id echoed (the gateway's when it sent none) and the gateway's, which feedback names."""
    return {"x-request-id": arrival.client_request_id or arrival.request_id,
            "x-gateway-request-id": arrival.request_id}


def _routing_headers(routing: Routing) -> dict[str, str]:
    return {"x-gateway-route": routing.route, "x-gateway-arm": routing.arm, "x-gateway-target": routing.target}


def gateway_headers(arrival: Arrival, routing: Routing, delivery: Delivery, cost: str,
                    usage: Usage | None = None, answer_cost: str | None = None) -> dict[str, str]:
    """Every ``x-gateway-*`` header of an answer; ``cost`` is final, or ``pending`` for a stream; ``answer_cost``,
    the returned answer's own, when a cascade or ensemble paid for others (``cost`` is then their sum).

    One dict literal, the usual headers in it at once: this runs on every answer."""
    request_id = arrival.request_id
    headers = {
        "x-request-id": arrival.client_request_id or request_id,
        "x-gateway-request-id": request_id,
        "x-gateway-route": routing.route,
        "x-gateway-arm": routing.arm,
        "x-gateway-target": routing.target,
        "x-gateway-cost-usd": cost,
        "x-gateway-overhead-ms": f"{delivery.overhead_s(arrival.elapsed()) * 1000:.3f}",
    }
    if arrival.quota is not None:
        headers.update(arrival.quota.headers)
    if delivery.attempts:
        headers["x-gateway-attempts"] = str(delivery.attempts)
    if delivery.fallback:
        headers["x-gateway-fallback"] = delivery.fallback
    if routing.score is not None:
        headers["x-gateway-score"] = f"{routing.score:.4f}"
    if delivery.rag is not None:
        headers["x-gateway-rag"] = delivery.rag
        headers["x-gateway-rag-ms"] = f"{delivery.rag_s * 1000:.3f}"
        if delivery.sources:
            headers["x-gateway-sources"] = delivery.sources
    if routing.feedback_token:
        headers["x-gateway-feedback-token"] = routing.feedback_token
    if routing.experiment:
        headers["x-gateway-experiment"] = routing.experiment
        headers["x-gateway-variant"] = routing.variant
        headers["x-gateway-assignment"] = "keyed" if routing.keyed else "unkeyed"
    if usage is not None and usage.estimated:
        headers["x-gateway-usage"] = "estimated"
    if delivery.cache:
        headers["x-gateway-cache"] = delivery.cache
        if delivery.saved_usd is not None:
            headers["x-gateway-cache-saved-usd"] = format_cost(delivery.saved_usd)
    strategy = delivery.strategy
    if strategy is not None:
        headers[f"x-gateway-{strategy.name}"] = strategy.outcome
        if strategy.rejected_by:
            headers["x-gateway-cascade-rejected"] = strategy.rejected_by
        if strategy.detail:
            headers["x-gateway-ensemble-detail"] = strategy.detail
        if routing.stream:  # the answer was read whole before its first byte was sent
            headers["x-gateway-stream"] = "buffered"
        headers["x-gateway-calls"] = format_calls(routing, delivery, answer_cost or cost)
    return headers


def completed_headers(done: Completion) -> dict[str, str]:
    """The headers of a finished answer, from its ``Completion``."""
    return gateway_headers(done.arrival, done.routing, done.delivery, format_cost(done.cost_usd), done.usage,
                           format_cost(done.answer_cost_usd) if done.delivery.calls else None)


def failure(gateway: GatewayState, arrival: Arrival, exc: Exception, routing: Routing = UNROUTED,
            delivery: Delivery = NOTHING_DELIVERED) -> Response:
    """Account a failed request and render its error; unexpected exceptions become a bare 500."""
    if not isinstance(exc, GatewayError):
        log.exception("unhandled error in request %s", arrival.named())
        exc = InternalError("The gateway failed to handle the request.")
    elif isinstance(exc, ClientClosedRequest):  # routine on any public endpoint: not an error of ours
        log.info("request %s: %s", arrival.named(), exc.message)
    gateway.ledger.close(finish(arrival, routing, delivery, status=exc.status, error_code=exc.code))
    headers = _id_headers(arrival)
    if arrival.quota is not None:  # admitted, then failed: where the key stands is still true
        headers.update(arrival.quota.headers)
    if routing.route:
        headers.update(_routing_headers(routing))
    headers.update(_delivery_headers(delivery))
    return error_response(exc, headers)
