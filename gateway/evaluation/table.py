"""The summary as plain text for a terminal: metrics per arm, the curve, the verdict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.evaluation.presentation import (
    OPTION_HEADER,
    ROWS,
    arm_label,
    number,
    option_cells,
    strategy_text,
    verdict_title,
)
from gateway.tables import render_table


def _metrics(summary: Mapping[str, Any]) -> list[str]:
    arms = list(summary["arms"])
    differences = summary["differences"] or {}
    header = ["metric", *(arm_label(summary, arm) for arm in arms)] + (
        ["fine_tuned - prompted", "95% CI"] if differences else [])
    lines = [header]
    for key, label, kind in ROWS:
        values = [summary["arms"][arm].get(key) for arm in arms]
        if all(v is None for v in values):
            continue
        line = [label, *(number(v, kind) for v in values)]
        if differences:
            d = differences.get(key)
            line += ["", ""] if d is None else [number(d["observed"], kind, signed=True),
                                                f"[{number(d['low'], kind, signed=True)}, "
                                                f"{number(d['high'], kind, signed=True)}]"]
        lines.append(line)
    return render_table(lines)


def _curve(summary: Mapping[str, Any]) -> list[str]:
    metric = summary["metric"]
    lines = [["strong share", "threshold", "to prompted", metric, "cost / query (USD)"]]
    own = summary["classifier"]["strong_share"]
    for p in summary["curve"]:
        share = f"{p['strong_share']:g}" + (" (policy)" if p["strong_share"] == own else "")
        lines.append([share, f"{p['threshold']:.4f}", str(p["prompted_examples"]),
                      number(p["accuracy"], "score"), number(p["cost_per_query_usd"], "usd")])
    return render_table(lines)


def summary_text(summary: Mapping[str, Any]) -> str:
    out = [f"route {summary['route']}: {summary['examples']} of {summary['examples_in_set']} examples from "
           f"{summary['dataset']}; primary metric {summary['metric']}", "", *_metrics(summary)]
    if summary["curve"]:
        classifier = summary["classifier"]
        out += ["", f"Cost-quality curve (classifier {classifier['model']!r}: the top-scored share of this set "
                "goes to the prompted arm)", *_curve(summary)]
    if summary["strategy"]:
        out += ["", strategy_text(summary["strategy"], summary["examples"])]
    if summary["options"]:
        header = [column.format(metric=summary["metric"]) for column in OPTION_HEADER]
        out += ["", "Options (each against prompting alone, paired 95% CI; break-even at the stated volume)",
                *render_table([header, *(option_cells(option) for option in summary["options"])])]
    recommendation = summary["recommendation"]
    if recommendation:
        out += ["", f"Recommendation: {verdict_title(recommendation)}", f"  {recommendation['headline']}",
                *(f"  - {reason}" for reason in recommendation["reasons"])]
    out += [f"Note: {note}" for note in summary.get("notes", ())]
    return "\n".join(out) + "\n"
