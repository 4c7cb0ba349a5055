"""GET /v1/economics and GET /v1/ledger: the live break-even over its window, and all-time totals.

``/v1/economics`` reads the economics window (:mod:`gateway.accounting.traffic_window`):
the cluster's with Redis configured and up, else this machine's persisted
store under the data directory; its ``scope`` says which. ``/v1/ledger``
gives all-time totals per label set: the cluster ledger's with Redis, else
this process's counters.
"""

from __future__ import annotations

import contextlib
import math
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.common import state_of
from gateway.economics.observed import economics_report
from gateway.economics.retraining import retraining_view
from gateway.errors import GatewayError, json_response
from gateway.pipeline.intake import authenticate
from gateway.state import GatewayState

_GAUGED = ("observed_monthly_queries", "projected_monthly_queries", "volume_share_of_projection",
           "actual_cost_per_query_usd", "prompted_only_cost_per_query_usd", "routing_only_cost_per_query_usd",
           "prompted_only_monthly_usd",
           "hybrid_monthly_usd", "savings_monthly_usd", "months_to_break_even", "horizon_months", "upfront_usd",
           "fixed_monthly_usd", "saved_in_window_usd", "window_s", "window_start", "observed_s", "requests",
           "prompted_requests")


async def _report(gateway: GatewayState) -> tuple[str, list[dict[str, Any]]]:
    window = await gateway.window.window()
    return window.scope, economics_report(gateway.policies.current, window, gateway.settings.economics)



def _refresh_retraining(gateway: GatewayState) -> None:
    """``gateway_retraining`` from the current policy and clock: age, cadence, due, the quality margin."""
    gauge = gateway.metrics.retraining
    gauge.clear()  # a route or trained_at that left the policy leaves the metrics too
    for route, figures in retraining_view(gateway.policies.current, datetime.now(UTC)).items():
        for quantity, value in figures.items():
            gauge.labels(route, quantity).set(value)


async def refresh_gauges(gateway: GatewayState) -> None:
    """Copy the live economics into ``gateway_economics`` (and ``gateway_retraining``) just before a scrape.

    ``enough_traffic`` (1 or 0) and the ``missing_*`` quantities say whether the
    rest means anything; a figure the evidence does not support yet is removed,
    not exported as 0. ``months_to_break_even`` is +Inf when it never pays off.
    """
    _refresh_retraining(gateway)
    gauge = gateway.metrics.economics
    try:
        _, report = await _report(gateway)
    except GatewayError:
        return  # the store said why (logged); /v1/economics answers with it, the scrape goes on
    for entry in report:
        route = entry["route"]
        values: dict[str, float | None] = {name: entry[name] for name in _GAUGED}
        values["enough_traffic"] = 1.0 if entry["enough_traffic"] else 0.0
        values |= {f"missing_{name}": float(value) for name, value in entry["missing"].items()}
        if entry["enough_traffic"] and values["months_to_break_even"] is None:
            values["months_to_break_even"] = math.inf
        for quantity, value in values.items():
            if value is not None:
                gauge.labels(route, quantity).set(float(value))
            else:
                with contextlib.suppress(KeyError):  # never exported: nothing to remove
                    gauge.remove(route, quantity)


async def economics(request: Request) -> Response:
    gateway = state_of(request)
    authenticate(request, gateway.settings)
    scope, routes = await _report(gateway)
    return json_response({"scope": scope, "routes": routes})


_TOTALS = {"gateway_requests": "requests", "gateway_cost_usd": "cost_usd"}


def _process_totals(exposition: bytes) -> list[dict[str, Any]]:
    """Successful requests and their cost per route, from the Prometheus text format (all workers)."""
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(exposition.decode()):
        field = _TOTALS.get(family.name)
        if field is None:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("status", "200") == "200":
                totals[sample.labels["route"]][field] += sample.value
    return [{"route": route, **values} for route, values in sorted(totals.items())]


async def _totals(gateway: GatewayState) -> tuple[str, float, list[dict[str, Any]]]:
    """(scope, start, rows) from the cluster ledger, else this process's counters since it started."""
    cluster = await gateway.cluster.totals() if gateway.cluster is not None else None
    if cluster is not None:
        return "cluster", *cluster
    return "process", gateway.metrics.started, _process_totals(gateway.metrics.exposition())


async def ledger(request: Request) -> Response:
    gateway = state_of(request)
    authenticate(request, gateway.settings)
    scope, since, rows = await _totals(gateway)
    return json_response({"scope": scope, "since": since, "rows": rows})


endpoints = [Route("/v1/economics", economics, methods=["GET"]), Route("/v1/ledger", ledger, methods=["GET"])]
