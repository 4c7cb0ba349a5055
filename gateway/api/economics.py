"""GET /v1/economics and GET /v1/ledger: totals and the break-even recomputed from real traffic.

With Redis configured and up, both read the cluster ledger (every replica's
requests); otherwise this process's own counters. ``scope`` says which.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.common import state_of
from gateway.errors import GatewayError, error_response
from gateway.intake import authenticate
from gateway.observed_economics import Observed, economics_report, observed_by_route
from gateway.state import GatewayState


async def _totals(gateway: GatewayState) -> tuple[str, float, dict[str, Observed], list[dict[str, Any]]]:
    """(scope, window start, per-route totals, rows) from the cluster ledger, else this process."""
    cluster = await gateway.cluster.totals() if gateway.cluster is not None else None
    if cluster is None:
        observed = observed_by_route(gateway.metrics.exposition())
        rows = [{"route": route, **vars(totals)} for route, totals in sorted(observed.items())]
        return "process", gateway.metrics.started, observed, rows
    since, rows = cluster
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in rows:
        for name in ("requests", "cost_usd", "counterfactual_usd"):
            sums[row["route"]][name] += row.get(name, 0.0)
    return "cluster", since, {route: Observed(**values) for route, values in sums.items()}, rows


_GAUGED = frozenset({"observed_monthly_queries", "projected_monthly_queries", "volume_share_of_projection",
                     "actual_cost_per_query_usd", "prompted_only_cost_per_query_usd", "prompted_only_monthly_usd",
                     "hybrid_monthly_usd", "savings_monthly_usd", "months_to_break_even", "horizon_months",
                     "upfront_usd", "savings_so_far_usd", "net_after_upfront_usd"})


def _json(data: object) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


async def refresh_gauges(gateway: GatewayState) -> None:
    """Copy the live economics into ``gateway_economics`` just before a scrape."""
    _, since, observed, _ = await _totals(gateway)
    for entry in economics_report(gateway.policies.current, observed, time.time() - since):
        for quantity, value in entry.items():
            if quantity in _GAUGED:
                gateway.metrics.economics.labels(entry["route"], quantity).set(
                    math.inf if value is None else float(value))


async def economics(request: Request) -> Response:
    gateway = state_of(request)
    try:
        authenticate(request, gateway.settings)
    except GatewayError as exc:
        return error_response(exc)
    scope, since, observed, _ = await _totals(gateway)
    return _json({"scope": scope,
                  "routes": economics_report(gateway.policies.current, observed, time.time() - since)})


async def ledger(request: Request) -> Response:
    gateway = state_of(request)
    try:
        authenticate(request, gateway.settings)
    except GatewayError as exc:
        return error_response(exc)
    scope, since, _, rows = await _totals(gateway)
    return _json({"scope": scope, "since": since, "rows": rows})


routes = [Route("/v1/economics", economics, methods=["GET"]), Route("/v1/ledger", ledger, methods=["GET"])]
