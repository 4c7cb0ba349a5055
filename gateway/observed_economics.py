"""The break-even projection recomputed from real traffic: is the fine-tune paying off at the volume we see?

The observed figures come from the gateway's own counters (merged across
workers in multiprocess mode): requests, actual cost, and the counterfactual
cost of the same tokens on the route's prompted target. The route's
``economics`` block gives the investment; ``gateway.economics.break_even``
does the arithmetic, so the calculator and the live view never disagree.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from gateway.economics import Scenario, break_even
from policies import PolicySet

SECONDS_PER_MONTH = 30.4375 * 86_400  # an average month: 365.25 / 12 days
_TOTALS = {"gateway_requests": "requests", "gateway_cost_usd": "cost_usd",
           "gateway_counterfactual_cost_usd": "counterfactual_usd"}


@dataclass(frozen=True)
class Observed:
    requests: float = 0.0
    cost_usd: float = 0.0
    counterfactual_usd: float = 0.0


def observed_by_route(exposition: bytes) -> dict[str, Observed]:
    """Successful requests and their costs per route, from the Prometheus text format."""
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(exposition.decode()):
        field = _TOTALS.get(family.name)
        if field is None:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("status", "200") == "200":
                totals[sample.labels["route"]][field] += sample.value
    return {route: Observed(**values) for route, values in totals.items()}


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def economics_report(policy: PolicySet, observed: dict[str, Observed], window_s: float) -> list[dict[str, Any]]:
    """One entry per route with an ``economics`` block; windows under a second count as one second."""
    window_s = max(window_s, 1.0)
    entries = []
    for name, route in sorted(policy.routes.items()):
        plan = route.economics
        if plan is None:
            continue
        seen = observed.get(name, Observed())
        months = window_s / SECONDS_PER_MONTH
        rate = seen.requests / months
        per_query = seen.cost_usd / seen.requests if seen.requests else 0.0
        prompted_per_query = seen.counterfactual_usd / seen.requests if seen.requests else 0.0
        result = break_even(Scenario(volume=rate, prompted_per_query=prompted_per_query,
                                     fine_tuned_per_query=per_query, upfront=plan.upfront_usd,
                                     maintenance_monthly=plan.fixed_monthly_usd,
                                     horizon_months=math.ceil(plan.horizon_months)))
        saved_so_far = seen.counterfactual_usd - seen.cost_usd - plan.fixed_monthly_usd * months
        entries.append({
            "route": name, "window_s": round(window_s, 3), "requests": seen.requests,
            "observed_monthly_queries": rate, "projected_monthly_queries": plan.projected_monthly_queries,
            "volume_share_of_projection": rate / plan.projected_monthly_queries,
            "actual_cost_per_query_usd": per_query, "prompted_only_cost_per_query_usd": prompted_per_query,
            "prompted_only_monthly_usd": result.prompted_monthly, "hybrid_monthly_usd": result.fine_tuned_monthly,
            "savings_monthly_usd": result.savings_monthly,
            "months_to_break_even": _finite(result.months_to_break_even),
            "horizon_months": plan.horizon_months, "upfront_usd": plan.upfront_usd,
            "fixed_monthly_usd": plan.fixed_monthly_usd,
            "savings_so_far_usd": saved_so_far, "net_after_upfront_usd": saved_so_far - plan.upfront_usd,
            "verdict": result.verdict,
        })
    return entries
