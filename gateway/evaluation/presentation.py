"""What the table and the HTML report show, and how numbers are written, defined once for both."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Kind = Literal["score", "rate", "seconds", "tokens", "usd", "count"]

ROWS: tuple[tuple[str, str, Kind], ...] = (
    ("exact_match", "exact match", "score"),
    ("f1", "token F1", "score"),
    ("similarity", "semantic similarity", "score"),
    ("json_valid", "JSON schema conformance", "score"),
    ("error_rate", "error rate", "rate"),
    ("latency_p50_s", "latency p50 (s)", "seconds"),
    ("latency_p95_s", "latency p95 (s)", "seconds"),
    ("ttft_p50_s", "TTFT p50 (s)", "seconds"),
    ("ttft_p95_s", "TTFT p95 (s)", "seconds"),
    ("prompt_tokens_mean", "prompt tokens / query", "tokens"),
    ("completion_tokens_mean", "completion tokens / query", "tokens"),
    ("cost_per_query_usd", "cost / query (USD)", "usd"),
    ("cost_total_usd", "cost, whole set (USD)", "usd"),
    ("fallbacks", "answered by a fallback", "count"),
)
"""(summary key, label, kind), in display order."""

VERDICTS = {"prompting": "prompting suffices", "hybrid": "hybrid routing", "fine_tuned": "fine-tuned arm",
            "strategy": "the route's strategy", "neither": "neither arm meets the bar"}
OPTION_HEADER = ("option", "{metric}", "- prompting", "95% CI", "cost / query (USD)", "clears bar", "break-even")
"""The options table's columns (``{metric}``: the primary metric's name)."""


def number(value: float | None, kind: Kind, *, signed: bool = False) -> str:
    """A figure as printed: 3 decimals for scores and seconds (milliseconds), 6 for USD."""
    if value is None:
        return "-"
    sign = "+" if signed else ""
    if kind in ("score", "rate", "seconds"):
        return f"{value:{sign}.3f}"
    if kind == "tokens":
        return f"{value:{sign}.1f}"
    if kind == "usd":
        return f"{value:{sign}.6f}"
    return f"{value:{sign}g}"


def arm_label(summary: Mapping[str, Any], arm: str) -> str:
    """An arm's column heading: its name, or for the journal's ``strategy`` arm the strategy's (``cascade``)."""
    strategy = summary.get("strategy")
    return strategy["name"] if arm == "strategy" and strategy else arm


def verdict_title(recommendation: Mapping[str, Any]) -> str:
    if recommendation["verdict"] == "strategy":
        return f"{recommendation['chosen']['strategy']} (the route's strategy)"
    return VERDICTS[recommendation["verdict"]]


def strategy_text(strategy: Mapping[str, Any], examples: int) -> str:
    """What the route's strategy did on the set, in one sentence."""
    outcomes = ", ".join(f"{count} {outcome}" for outcome, count in strategy["outcomes"].items()) or "none"
    rate = strategy["escalation_rate"]
    text = (f"{strategy['name']} (the route unforced): {strategy['engaged']} of {examples} answers judged: {outcomes}"
            + ("" if rate is None else f"; escalation rate {rate:.1%}"))
    if strategy["rejected_by"]:
        text += "; rejected by " + ", ".join(f"{name} {count}" for name, count in strategy["rejected_by"].items())
    answered = ", ".join(f"{arm} {count}" for arm, count in strategy["answered_by"].items())
    return text + f"; answered by {answered}; {strategy['paid_calls']} paid upstream calls"


def option_cells(option: Mapping[str, Any]) -> list[str]:
    """One row of the options table, as :data:`OPTION_HEADER` names the columns."""
    gap, be = option["vs_prompting"], option["break_even"]
    months = "" if be is None else ("never" if be["months_to_break_even"] is None
                                    else f"{be['months_to_break_even']:.1f} months")
    return [option["label"], number(option["accuracy"], "score"),
            "" if gap is None else number(gap["observed"], "score", signed=True),
            "" if gap is None else f"[{number(gap['low'], 'score', signed=True)}, "
                                   f"{number(gap['high'], 'score', signed=True)}]",
            number(option["cost_per_query_usd"], "usd"), "yes" if option["clears_bar"] else "no", months]
