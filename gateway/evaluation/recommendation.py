"""The decision guide's framework (steps 6-8 and 16) applied to measured numbers, as one pure function.

:func:`recommend` weighs up to four options on the primary metric and the
cost per query: **prompting alone** (the curve's share 1), **the fine-tune
alone** (share 0), **routing** (the curve's hybrid shares, between), and, on a
route with a ``strategy`` (cascade, ensemble), **the strategy** as measured
through the route unforced (:class:`Measured`: every call it paid for is in
its cost). It decides, in the guide's order:

1. **The bar.** ``required_accuracy`` when given (step 6: the requirement);
   otherwise "as good as prompting": the prompted accuracy minus ``tolerance``.
   For a declared style task where the fine-tune is measurably better (the
   gap's 95% interval above 0), the bar rises to the fine-tune's accuracy
   minus ``tolerance``: the style is the point.
2. **The cheapest option that clears the bar** is the candidate. Routing's
   share is the cheapest hybrid share that clears it (none does: the most
   accurate one, for the comparison). The strategy competes like any other
   option: it runs on the fine-tune, so it carries the same investment, and
   its break-even is against the same counterfactual, all traffic on the
   prompted arm. Ties: the higher accuracy, then a curve point over the
   strategy (fewer moving parts), then more prompting. None clears it:
   *neither* (improve prompting or the fine-tune's data before deciding).
3. **The three valid cases** (step 7): *critical accuracy* (a requirement
   prompting misses and the candidate meets), *style replication* (declared
   and measured), *scale optimisation* (the candidate is cheaper per query
   and repays the fine-tune within the horizon at the stated volume, step 8).
   If the candidate is prompting itself or no case applies: *prompting
   suffices* (the guide's "stop here and optimise prompting further").
   Otherwise *fine-tuned arm* at share 0, *hybrid routing* at its share, or
   *strategy* (the route's cascade or ensemble as it is).

Accuracy cases override the break-even (a requirement is a requirement), but
the break-even is always reported, for every option, with the inputs it used:
a projected volume and costs per query measured on the test set (``breakeven
--from`` and the dashboard use observed ones, hence different months for the
same route).
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

Verdict = Literal["prompting", "hybrid", "fine_tuned", "strategy", "neither"]
Kind = Literal["prompting", "fine_tuned", "hybrid", "strategy"]
_EPSILON = 1e-12


@dataclass(frozen=True)
class Measured:
    """A route's strategy (cascade, ensemble) as eval measured it: the route called without forcing an arm."""

    strategy: str
    accuracy: float
    cost_per_query_usd: float
    """Every upstream call it paid for, rejected answers included, per example (a failed call costs 0)."""

    def as_json(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "strong_share": None, "accuracy": self.accuracy,
                "cost_per_query_usd": self.cost_per_query_usd}


Candidate = CurvePoint | Measured


def _scenario(investment: Investment, prompted: CurvePoint, option: Candidate) -> Scenario:
    evidence = Evidence(
        volume=f"projected: {investment.monthly_volume:,.0f} queries/month (economics block or --monthly-volume)",
        costs=f"measured by eval on the test set: prompting ${prompted.cost_per_query_usd:.6f}, "
              f"{_option(option)} ${option.cost_per_query_usd:.6f} per query")
    return investment.scenario(prompted.cost_per_query_usd, option.cost_per_query_usd, evidence)


def _break_even_json(be: BreakEven | None) -> dict[str, Any] | None:
    if be is None:
        return None
    return {"monthly_volume": be.scenario.volume, "prompted_monthly_usd": be.prompted_monthly,
            "option_monthly_usd": be.fine_tuned_monthly, "savings_monthly_usd": be.savings_monthly,
            "months_to_break_even": be.months_to_break_even, "horizon_months": be.scenario.horizon_months,
            "net_at_horizon_usd": be.cumulative_savings_at_horizon, "verdict": be.verdict,
            "inputs": be.scenario.evidence.as_json()}


@dataclass(frozen=True)
class Option:
    """One way to serve the route, as the recommendation weighed it."""

    kind: Kind
    candidate: Candidate
    clears_bar: bool
    break_even: BreakEven | None
    """Against prompting alone at the stated volume; None for prompting itself."""

    def as_json(self) -> dict[str, Any]:
        return {"option": self.kind, "label": _option(self.candidate), **self.candidate.as_json(),
                "clears_bar": self.clears_bar, "break_even": _break_even_json(self.break_even)}


@dataclass(frozen=True)
class Recommendation:
    verdict: Verdict
    strong_share: float | None
    """The chosen point's share of traffic for the prompted arm (1: prompting alone); None: the strategy."""
    headline: str
    reasons: tuple[str, ...]
    cases: dict[str, bool]
    bar: float
    chosen: Candidate
    break_even: BreakEven | None
    """Prompting alone versus the chosen option; None when the chosen option is prompting."""
    options: tuple[Option, ...]
    """Every option weighed, prompting first, with its break-even: the comparison the verdict read."""

    def as_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "strong_share": self.strong_share, "headline": self.headline,
                "reasons": list(self.reasons), "cases": self.cases, "bar": self.bar,
                "chosen": self.chosen.as_json(), "break_even": _break_even_json(self.break_even)}


def _months(be: BreakEven) -> str:
    months = be.months_to_break_even
    return "never" if months is None else f"{months:.1f} months"


def _option(point: Candidate) -> str:
    if isinstance(point, Measured):
        return f"the {point.strategy}"
    if point.strong_share >= 1:
        return "prompting alone"
    if point.strong_share <= 0:
        return "the fine-tuned arm alone"
    return f"routing with strong_share {point.strong_share:g}"


def _share(candidate: Candidate) -> float | None:
    return None if isinstance(candidate, Measured) else candidate.strong_share


def _cheapest(candidate: Candidate) -> tuple[float, float, bool, float]:
    """Sort key of the guide's step 2: cost, then accuracy, then a curve point over the strategy, then prompting."""
    return (candidate.cost_per_query_usd, -candidate.accuracy, isinstance(candidate, Measured),
            -(_share(candidate) or 0.0))


def _options(curve: Sequence[CurvePoint], strategy: Measured | None, bar: float,
             investment: Investment) -> tuple[Option, ...]:
    """Prompting, the fine-tune, routing's best hybrid share and the strategy, each with its break-even."""
    by_share = {p.strong_share: p for p in curve}
    prompted = by_share[1.0]
    picks: list[tuple[Kind, Candidate]] = [("prompting", prompted), ("fine_tuned", by_share[0.0])]
    hybrids = [p for p in curve if 0 < p.strong_share < 1]
    if hybrids:
        clearing = [p for p in hybrids if p.accuracy >= bar - _EPSILON]
        picks.append(("hybrid", min(clearing, key=_cheapest) if clearing
                      else max(hybrids, key=lambda p: (p.accuracy, p.strong_share))))
    if strategy is not None:
        picks.append(("strategy", strategy))
    return tuple(Option(kind, candidate, candidate.accuracy >= bar - _EPSILON,
                        None if kind == "prompting" else break_even(_scenario(investment, prompted, candidate)))
                 for kind, candidate in picks)


def _ranking(options: Sequence[Option], metric: str) -> str:
    """Why the candidate: what clears the bar, cheapest first, and what does not."""
    clear = sorted((o for o in options if o.clears_bar), key=lambda o: _cheapest(o.candidate))
    below = [o for o in options if not o.clears_bar]
    text = "clear the bar, cheapest first: " + (", ".join(
        f"{_option(o.candidate)} (${o.candidate.cost_per_query_usd:.6f})" for o in clear) or "none")
    if below:
        text += "; below it: " + ", ".join(f"{_option(o.candidate)} ({metric} {o.candidate.accuracy:.3f})"
                                           for o in below)
    return text


def _title(option: Option) -> str:
    candidate = option.candidate
    if isinstance(candidate, Measured):
        return f"{candidate.strategy.capitalize()} (the route's strategy)"
    return "Fine-tuned arm" if option.kind == "fine_tuned" else f"Hybrid routing at strong_share {candidate.strong_share:g}"


def recommend(curve: Sequence[CurvePoint], gap: Interval, *, metric: str, investment: Investment,
              strategy: Measured | None = None, required_accuracy: float | None = None,
              tolerance: float = DEFAULT_TOLERANCE, style_task: bool = False) -> Recommendation:
    """The verdict and the numbers behind it; ``gap`` is fine-tuned minus prompted on ``metric``; ``strategy``,
    the route's cascade or ensemble as measured, when it has one."""
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
    if strategy is not None:
        reasons.append(f"{metric}: the {strategy.strategy} {strategy.accuracy:.3f} at "
                       f"${strategy.cost_per_query_usd:.6f} per query, every call it paid for included")
    reasons.append(f"bar {bar:.3f}: " + ("the required accuracy" if required_accuracy is not None and not style
                                         else "the fine-tune's accuracy less the tolerance" if style
                                         else f"prompting's accuracy less the tolerance {tolerance:g}"))
    options = _options(curve, strategy, bar, investment)
    reasons.append(_ranking(options, metric))
    adequate = [o for o in options if o.clears_bar]
    prompting_meets = required_accuracy is None or prompted.accuracy >= required_accuracy
    cases = {"critical_accuracy": False, "style_replication": style, "scale_optimisation": False}
    if not adequate:
        best = max((o.candidate for o in options),
                   key=lambda c: (c.accuracy, not isinstance(c, Measured), _share(c) or 0.0))
        return Recommendation(
            "neither", _share(best),
            f"No option reaches {metric} {bar:.3f}: the best is {_option(best)} at {best.accuracy:.3f}. "
            "Improve prompting (few-shot, chain-of-thought, RAG) or the fine-tune's data before deciding.",
            tuple(reasons), cases, bar, best, None, options)
    chosen = min(adequate, key=lambda o: _cheapest(o.candidate))
    if chosen.kind == "prompting":
        reasons.append("no cheaper option reaches the bar")
        return Recommendation("prompting", 1.0, f"Prompting suffices: {metric} {prompted.accuracy:.3f} at "
                              f"${prompted.cost_per_query_usd:.6f} per query; no cheaper option reaches "
                              f"{bar:.3f}.", tuple(reasons), cases, bar, prompted, None, options)
    candidate, be = chosen.candidate, chosen.break_even
    assert be is not None  # every option but prompting has one
    pays = be.months_to_break_even is not None and be.months_to_break_even <= investment.horizon_months
    cases["critical_accuracy"] = not prompting_meets
    cases["scale_optimisation"] = pays
    reasons.append(f"{_option(candidate)}: {metric} {candidate.accuracy:.3f} at ${candidate.cost_per_query_usd:.6f} "
                   f"per query vs ${prompted.cost_per_query_usd:.6f}; break-even {_months(be)} at "
                   f"{investment.monthly_volume:,.0f} queries/month ({be.verdict}); inputs: {be.scenario.evidence}")
    if not any(cases.values()):
        reasons.append(f"no valid fine-tuning case: it does not repay ${investment.upfront:,.0f} upfront "
                       f"within {investment.horizon_months} months")
        return Recommendation("prompting", 1.0, f"Prompting suffices: {_option(candidate)} would match it "
                              f"({candidate.accuracy:.3f}) but breaks even after {_months(be)}, beyond "
                              f"{investment.horizon_months} months.", tuple(reasons), cases, bar, prompted, be,
                              options)
    why = ", ".join(name.replace("_", " ") for name, applies in cases.items() if applies)
    return Recommendation(chosen.kind, _share(candidate),
                          f"{_title(chosen)}: {metric} {candidate.accuracy:.3f} (prompting {prompted.accuracy:.3f}) "
                          f"at ${candidate.cost_per_query_usd:.6f} vs ${prompted.cost_per_query_usd:.6f} per query; "
                          f"break-even {_months(be)} at {investment.monthly_volume:,.0f} queries/month ({why}).",
                          tuple(reasons), cases, bar, candidate, be, options)
