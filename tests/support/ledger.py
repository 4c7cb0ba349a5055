"""Read what a gateway charged: per response (header or streamed comment) and in its ledger."""

from __future__ import annotations

import re

import httpx

_STREAMED_COST = re.compile(rb"x-gateway-cost-usd=([\d.]+)")


def cost_of(response: httpx.Response) -> float:
    """The cost a response reports: its header, or for a stream the SSE comment before [DONE]."""
    if response.headers["x-gateway-cost-usd"] == "pending":
        found = _STREAMED_COST.search(response.content)
        assert found is not None, "a stream without its cost comment"
        return float(found.group(1))
    return float(response.headers["x-gateway-cost-usd"])


def cluster_totals(url: str) -> tuple[str, float, float]:
    """The ledger's scope, request count and cost, summed over every row."""
    body = httpx.get(url + "/v1/ledger").json()
    return (body["scope"], sum(r.get("requests", 0.0) for r in body["rows"]),
            sum(r.get("cost_usd", 0.0) for r in body["rows"]))
