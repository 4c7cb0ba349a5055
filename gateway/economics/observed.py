"""The break-even recomputed from real traffic: is the fine-tune paying off at the volume we see?

The evidence is a window of per-route, per-arm counters (:mod:`gateway.accounting.traffic_window`),
not the count since the process started: the observed volume is the requests in
the window over the time it spans, and it is not extrapolated at all before the
minimum observation (``EconomicsSettings``: time and requests). Prompting's
cost per query is what the prompted arm really cost per request it served in
the window (its system prompt, few-shot examples and retrieved context
included), and stays unknown until it served enough of them. Short of either,
the verdict is :class:`gateway.economics.breakeven.Shortfall`'s "not enough traffic yet"
with what is missing.

:class:`LiveInputs` is what ``GET /v1/economics`` publishes per route and
``breakeven --from`` reads back; :func:`live_break_even` turns it into the
same :func:`gateway.economics.breakeven.break_even` answer for both, so they can only
differ where the CLI is told to (``--horizon-months``), and then says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.accounting.traffic_window import CACHE_ARM, Counts, Window
from gateway.economics.breakeven import BreakEven, Evidence, Scenario, Shortfall, break_even
from gateway.settings import EconomicsSettings
from policies import Economics, PolicySet

SECONDS_PER_MONTH = 30.4375 * 86_400  # an average month: 365.25 / 12 days


@dataclass(frozen=True)
class LiveInputs:
    """One route's observed evidence and its investment: everything the live break-even reads."""

    route: str
    scope: str
    window_s: float
    window_start: float
    observed_s: float
    requests: float
    cost_usd: float
    prompted_requests: float
    prompted_cost_usd: float
    prompted_input_tokens: float
    prompted_output_tokens: float
    upfront_usd: float
    fixed_monthly_usd: float
    horizon_months: float
    projected_monthly_queries: float
    shortfall: Shortfall
    routed_cost_usd: float | None = None
    """What routing alone would have paid for the same requests (None: all of ``cost_usd``, no strategy)."""

    @property
    def monthly_queries(self) -> float | None:
        """Requests per month at the observed rate; None before the minimum observation."""
        if self.shortfall.requests or self.shortfall.seconds:
            return None
        return self.requests / (self.observed_s / SECONDS_PER_MONTH)

    @property
    def actual_per_query(self) -> float | None:
        return self.cost_usd / self.requests if self.requests else None

    @property
    def routed_per_query(self) -> float | None:
        """Routing alone's cost per query, beside a cascade's or ensemble's actual one."""
        if not self.requests:
            return None
        return (self.cost_usd if self.routed_cost_usd is None else self.routed_cost_usd) / self.requests

    @property
    def prompted_per_query(self) -> float | None:
        """The prompted arm's observed cost per request; None until enough prompted requests were seen."""
        if self.shortfall.prompted_requests or not self.prompted_requests:
            return None
        return self.prompted_cost_usd / self.prompted_requests

    def evidence(self) -> Evidence:
        start = datetime.fromtimestamp(self.window_start, UTC).isoformat(timespec="seconds")
        volume = (f"observed: {self.requests:,.0f} requests in {_span(self.observed_s)} since {start} "
                  f"(window {_span(self.window_s)}, {self.scope})")
        actual, prompted = self.actual_per_query, self.prompted_per_query
        costs = ("observed: hybrid " + ("unknown" if actual is None else f"${actual:.6f}") + " per query; prompted "
                 + ("unknown" if prompted is None else f"${prompted:.6f}")
                 + f" per query over {self.prompted_requests:,.0f} prompted requests (prompts and context included)")
        return Evidence(volume=volume, costs=costs)

    def as_json(self) -> dict[str, Any]:
        return ({name: getattr(self, name) for name in _INPUT_FIELDS} | {"missing": self.shortfall.as_json()}
                | {"routed_cost_usd": self.routed_cost_usd})

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> LiveInputs:
        missing = row["missing"]
        return cls(**{name: row[name] for name in _INPUT_FIELDS},
                   shortfall=Shortfall(int(missing["requests"]), float(missing["seconds"]),
                                       int(missing["prompted_requests"])),
                   routed_cost_usd=row.get("routed_cost_usd"))


_INPUT_FIELDS = ("route", "scope", "window_s", "window_start", "observed_s", "requests", "cost_usd",
                 "prompted_requests", "prompted_cost_usd", "prompted_input_tokens", "prompted_output_tokens",
                 "upfront_usd", "fixed_monthly_usd", "horizon_months", "projected_monthly_queries")


def _span(seconds: float) -> str:
    if seconds >= 2 * 86_400:
        return f"{seconds / 86_400:.1f} d"
    if seconds >= 2 * 3_600:
        return f"{seconds / 3_600:.1f} h"
    return f"{seconds / 60:.0f} min"


def live_inputs(route: str, plan: Economics, window: Window, minimums: EconomicsSettings) -> LiveInputs:
    """What the window holds for ``route``, and what it still lacks."""
    arms = window.arms(route)
    total = sum((counts for arm, counts in arms.items() if arm != CACHE_ARM), Counts())  # the arms' traffic
    prompted = arms.get("prompted", Counts())
    shortfall = Shortfall(requests=max(0, math.ceil(minimums.min_requests - total.requests)),
                          seconds=max(0.0, max(minimums.min_observed_s, 1.0) - window.observed_s),
                          prompted_requests=max(0, math.ceil(minimums.min_prompted_requests - prompted.requests)))
    if not prompted.requests and not shortfall.prompted_requests:
        shortfall = Shortfall(shortfall.requests, shortfall.seconds, 1)  # a minimum of 0 still needs one
    return LiveInputs(route, window.scope, window.window_s, window.start, window.observed_s, total.requests,
                      total.cost_usd, prompted.requests, prompted.cost_usd, prompted.input_tokens,
                      prompted.output_tokens, plan.upfront_usd, plan.fixed_monthly_usd, plan.horizon_months,
                      plan.projected_monthly_queries, shortfall, total.routed_cost_usd)


def live_break_even(inputs: LiveInputs, horizon_months: int | None = None) -> BreakEven | None:
    """The guide's break-even on the observed evidence; None while the evidence falls short."""
    volume, actual, prompted = inputs.monthly_queries, inputs.actual_per_query, inputs.prompted_per_query
    if inputs.shortfall or volume is None or actual is None or prompted is None:
        return None
    return break_even(Scenario(volume=volume, prompted_per_query=prompted, fine_tuned_per_query=actual,
                               upfront=inputs.upfront_usd, maintenance_monthly=inputs.fixed_monthly_usd,
                               horizon_months=horizon_months or math.ceil(inputs.horizon_months),
                               evidence=inputs.evidence()))


def verdict_of(inputs: LiveInputs, result: BreakEven | None) -> str:
    """The break-even's verdict, or what the evidence still lacks: one wording for the view and the CLI."""
    return inputs.shortfall.verdict if result is None else result.verdict


def _entry(inputs: LiveInputs) -> dict[str, Any]:
    """The inputs as published, and every figure they support (``None`` for those they do not yet)."""
    result = live_break_even(inputs)
    volume, prompted = inputs.monthly_queries, inputs.prompted_per_query
    start = datetime.fromtimestamp(inputs.window_start, UTC).isoformat(timespec="seconds")
    saved = (None if prompted is None
             else prompted * inputs.requests - inputs.cost_usd
             - inputs.fixed_monthly_usd * inputs.observed_s / SECONDS_PER_MONTH)
    tokens = (None if prompted is None else {"input": inputs.prompted_input_tokens / inputs.prompted_requests,
                                             "output": inputs.prompted_output_tokens / inputs.prompted_requests})
    return inputs.as_json() | {
        "window_start_iso": start, "enough_traffic": not inputs.shortfall,
        "observed_monthly_queries": volume,
        "volume_share_of_projection": None if volume is None else volume / inputs.projected_monthly_queries,
        "actual_cost_per_query_usd": inputs.actual_per_query, "prompted_only_cost_per_query_usd": prompted,
        "routing_only_cost_per_query_usd": inputs.routed_per_query,
        "prompted_tokens_per_query": tokens, "saved_in_window_usd": saved,
        "prompted_only_monthly_usd": None if result is None else result.prompted_monthly,
        "hybrid_monthly_usd": None if result is None else result.fine_tuned_monthly,
        "savings_monthly_usd": None if result is None else result.savings_monthly,
        "months_to_break_even": None if result is None else result.months_to_break_even,
        "net_at_horizon_usd": None if result is None else result.cumulative_savings_at_horizon,
        "inputs": inputs.evidence().as_json(), "verdict": verdict_of(inputs, result),
    }


def economics_report(policy: PolicySet, window: Window, minimums: EconomicsSettings) -> list[dict[str, Any]]:
    """One entry per route with an ``economics`` block, from the window's evidence."""
    return [_entry(live_inputs(name, route.economics, window, minimums))
            for name, route in sorted(policy.routes.items()) if route.economics is not None]
