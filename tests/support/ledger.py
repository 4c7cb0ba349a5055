"""Read what a gateway charged: per response (header or streamed comment) and in its ledger."""

from __future__ import annotations

import re

import httpx

_STREAMED_COST = re.compile(rb"\n: x-gateway-cost-usd=([\d.]+|unknown)\n")


def cost_of(response: httpx.Response) -> float:
    """The cost a response reports: its header, or for a stream the SSE comment before [DONE].

    ``unknown`` (a target without a price) counts as 0, as it does in ``gateway_cost_usd_total``.
    """
    reported = response.headers["x-gateway-cost-usd"]
    if reported == "pending":
        found = _STREAMED_COST.search(response.content)
        assert found is not None, "a stream without its cost comment"
        reported = found.group(1).decode()
    return 0.0 if reported == "unknown" else float(reported)


def cluster_totals(url: str) -> tuple[str, float, float]:
    """The ledger's scope, request count and cost, summed over every row."""
    body = httpx.get(url + "/v1/ledger").json()
    return (body["scope"], sum(r.get("requests", 0.0) for r in body["rows"]),
            sum(r.get("cost_usd", 0.0) for r in body["rows"]))
