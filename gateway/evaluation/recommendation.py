"""The decision guide's framework (steps 6-8 and 16) applied to measured numbers, as one pure function.

:func:`recommend` reads the primary metric of each point on the cost-quality
curve (share 1 = prompting alone, share 0 = the fine-tune alone, between =
hybrid routing) and decides, in the guide's order:

1. **The bar.** ``required_accuracy`` when given (step 6: the requirement);
   otherwise "as good as prompting": the prompted accuracy minus ``tolerance``.
   For a declared style task where the fine-tune is measurably better (the
   gap's 95% interval above 0), the bar rises to the fine-tune's accuracy
   minus ``tolerance``: the style is the point.
2. **The cheapest option that clears the bar** is the candidate (ties: the
   higher accuracy, then more prompting). None clears it: *neither* (improve
   prompting or the fine-tune's data before deciding).
3. **The three valid cases** (step 7): *critical accuracy* (a requirement
   prompting misses and the candidate meets), *style replication* (declared
   and measured), *scale optimisation* (the candidate is cheaper per query
   and repays the fine-tune within the horizon at the stated volume, step 8).
   If the candidate is prompting itself or no case applies: *prompting
   suffices* (the guide's "stop here and optimise prompting further").
   Otherwise *fine-tuned arm* at share 0, else *hybrid routing* at its share.

Accuracy cases override the break-even (a requirement is a requirement), but
the break-even is always reported, with the inputs it used: a projected volume
and costs per query measured on the test set (``breakeven --from`` and the
dashboard use observed ones, hence different months for the same route).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gateway.economics.breakeven import (
    BreakEven,
    Evidence,
    Investment,
    Scenario,
    break_even,
)
from gateway.evaluation.bootstrap import Interval
from gateway.evaluation.curve import CurvePoint
from gateway.evaluation.vocabulary import DEFAULT_TOLERANCE

Verdict = Literal["prompting", "hybrid", "fine_tuned", "neither"]


def _scenario(investment: Investment, prompted: CurvePoint, option: CurvePoint) -> Scenario:
    evidence = Evidence(
        volume=f"projected: {investment.monthly_volume:,.0f} queries/month (economics block or --monthly-volume)",
        costs=f"measured by eval on the test set: prompting ${prompted.cost_per_query_usd:.6f}, "
              f"{_option(option)} ${option.cost_per_query_usd:.6f} per query")
    return investment.scenario(prompted.cost_per_query_usd, option.cost_per_query_usd, evidence)


@dataclass(frozen=True)
class Recommendation:
    verdict: Verdict
    strong_share: float
    """The chosen point's share of traffic for the prompted arm (1: prompting alone)."""
    headline: str
    reasons: tuple[str, ...]
    cases: dict[str, bool]
    bar: float
    chosen: CurvePoint
    break_even: BreakEven | None
    """Prompting alone versus the chosen point; None when the chosen point is prompting."""

    def as_json(self) -> dict[str, Any]:
        be = self.break_even
        return {"verdict": self.verdict, "strong_share": self.strong_share, "headline": self.headline,
                "reasons": list(self.reasons), "cases": self.cases, "bar": self.bar,
                "chosen": self.chosen.as_json(),
                "break_even": None if be is None else {
                    "monthly_volume": be.scenario.volume, "prompted_monthly_usd": be.prompted_monthly,
                    "option_monthly_usd": be.fine_tuned_monthly, "savings_monthly_usd": be.savings_monthly,
                    "months_to_break_even": be.months_to_break_even, "horizon_months": be.scenario.horizon_months,
                    "net_at_horizon_usd": be.cumulative_savings_at_horizon, "verdict": be.verdict,
                    "inputs": be.scenario.evidence.as_json()}}


def _months(be: BreakEven) -> str:
    months = be.months_to_break_even
    return "never" if months is None else f"{months:.1f} months"


def _option(point: CurvePoint) -> str:
    if point.strong_share >= 1:
        return "prompting alone"
    if point.strong_share <= 0:
        return "the fine-tuned arm alone"
    return f"routing with strong_share {point.strong_share:g}"


def recommend(curve: Sequence[CurvePoint], gap: Interval, *, metric: str, investment: Investment,
              required_accuracy: float | None = None, tolerance: float = DEFAULT_TOLERANCE,
              style_task: bool = False) -> Recommendation:
    """The verdict and the numbers behind it; ``gap`` is fine-tuned minus prompted on ``metric``."""
    by_share = {p.strong_share: p for p in curve}
    if 0.0 not in by_share or 1.0 not in by_share:
        raise ValueError("the curve needs its two ends, strong_share 0 and 1")
    prompted, tuned = by_share[1.0], by_share[0.0]
    style = style_task and gap.low > 0
    bar = required_accuracy if required_accuracy is not None else prompted.accuracy - tolerance
    if style:
        bar = max(bar, tuned.accuracy - tolerance)
    reasons = [f"{metric}: prompted {prompted.accuracy:.3f}, fine-tuned {tuned.accuracy:.3f}; gap "
               f"{gap.observed:+.3f} (95% CI {gap.low:+.3f} to {gap.high:+.3f}, {gap.pairs} examples)"]
    reasons.append(f"bar {bar:.3f}: " + ("the required accuracy" if required_accuracy is not None and not style
                                         else "the fine-tune's accuracy less the tolerance" if style
                                         else f"prompting's accuracy less the tolerance {tolerance:g}"))
    adequate = [p for p in curve if p.accuracy >= bar - 1e-12]
    prompting_meets = required_accuracy is None or prompted.accuracy >= required_accuracy
    cases = {"critical_accuracy": False, "style_replication": style, "scale_optimisation": False}
    if not adequate:
        best = max(curve, key=lambda p: (p.accuracy, p.strong_share))
        return Recommendation(
            "neither", best.strong_share,
            f"No option reaches {metric} {bar:.3f}: the best is {_option(best)} at {best.accuracy:.3f}. "
            "Improve prompting (few-shot, chain-of-thought, RAG) or the fine-tune's data before deciding.",
            tuple(reasons), cases, bar, best, None)
    chosen = min(adequate, key=lambda p: (p.cost_per_query_usd, -p.accuracy, -p.strong_share))
    if chosen.strong_share >= 1:
        reasons.append("no cheaper option reaches the bar")
        return Recommendation("prompting", 1.0, f"Prompting suffices: {metric} {prompted.accuracy:.3f} at "
                              f"${prompted.cost_per_query_usd:.6f} per query; no cheaper option reaches "
                              f"{bar:.3f}.", tuple(reasons), cases, bar, chosen, None)
    be = break_even(_scenario(investment, prompted, chosen))
    pays = be.months_to_break_even is not None and be.months_to_break_even <= investment.horizon_months
    cases["critical_accuracy"] = not prompting_meets
    cases["scale_optimisation"] = pays
    reasons.append(f"{_option(chosen)}: {metric} {chosen.accuracy:.3f} at ${chosen.cost_per_query_usd:.6f} "
                   f"per query vs ${prompted.cost_per_query_usd:.6f}; break-even {_months(be)} at "
                   f"{investment.monthly_volume:,.0f} queries/month ({be.verdict}); inputs: {be.scenario.evidence}")
    if not any(cases.values()):
        reasons.append(f"no valid fine-tuning case: it does not repay ${investment.upfront:,.0f} upfront "
                       f"within {investment.horizon_months} months")
        return Recommendation("prompting", 1.0, f"Prompting suffices: {_option(chosen)} would match it "
                              f"({chosen.accuracy:.3f}) but breaks even after {_months(be)}, beyond "
                              f"{investment.horizon_months} months.", tuple(reasons), cases, bar,
                              by_share[1.0], be)
    verdict: Verdict = "fine_tuned" if chosen.strong_share <= 0 else "hybrid"
    why = ", ".join(name.replace("_", " ") for name, applies in cases.items() if applies)
    title = ("Fine-tuned arm" if verdict == "fine_tuned"
             else f"Hybrid routing at strong_share {chosen.strong_share:g}")
    return Recommendation(verdict, chosen.strong_share,
                          f"{title}: {metric} {chosen.accuracy:.3f} (prompting {prompted.accuracy:.3f}) at "
                          f"${chosen.cost_per_query_usd:.6f} vs ${prompted.cost_per_query_usd:.6f} per query; "
                          f"break-even {_months(be)} at {investment.monthly_volume:,.0f} queries/month ({why}).",
                          tuple(reasons), cases, bar, chosen, be)
