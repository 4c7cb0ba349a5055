"""The summary as one self-contained HTML page: inline CSS, the cost-quality curve as inline SVG, no script.

Every figure carries its exact value in a ``data-value`` attribute next to
the rounded text, so a browser test can check the page against
``summary.json``; the page renders offline and can be mailed as one file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
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

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;color:#1d2430}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem}
.meta{color:#5b6575}table{border-collapse:collapse;margin:.5rem 0}
th,td{padding:.3rem .7rem;border-bottom:1px solid #e2e6ec;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f4f6f9}
#recommendation{border-left:5px solid #2f6fde;background:#f2f6fd;padding:.8rem 1.2rem;margin-top:1.5rem}
#recommendation[data-verdict=prompting]{border-color:#2d9a5b;background:#f0f9f3}
#recommendation[data-verdict=neither]{border-color:#c4412f;background:#fcf2f0}
.headline{font-weight:600}svg text{font:12px system-ui,sans-serif;fill:#3a4453}
.curve{fill:none;stroke:#2f6fde;stroke-width:2}.point{fill:#2f6fde}.chosen{fill:#e0791b;r:7}
.axis{stroke:#8993a3}.grid{stroke:#e8ebf0}
"""
_W, _H, _LEFT, _RIGHT, _TOP, _BOTTOM = 720, 380, 80, 30, 20, 50


def _value(value: Any) -> str:
    return escape(json.dumps(value), quote=True)


def _cell(value: float | None, kind: Any, **attributes: str) -> str:
    extra = "".join(f' data-{k}="{escape(v, quote=True)}"' for k, v in attributes.items())
    return f'<td{extra} data-value="{_value(value)}">{escape(number(value, kind))}</td>'


def _metrics(summary: Mapping[str, Any]) -> str:
    arms = list(summary["arms"])
    differences = summary["differences"] or {}
    head = "".join(f"<th>{escape(arm_label(summary, a))}</th>" for a in arms)
    if differences:
        head += "<th>fine_tuned - prompted</th><th>95% CI low</th><th>95% CI high</th>"
    rows = []
    for key, label, kind in ROWS:
        values = [summary["arms"][arm].get(key) for arm in arms]
        if all(v is None for v in values):
            continue
        cells = "".join(_cell(v, kind, arm=arm) for arm, v in zip(arms, values, strict=True))
        d = differences.get(key)
        if differences:
            cells += ("<td></td>" * 3 if d is None else "".join(
                f'<td data-diff="{part}" data-value="{_value(d[part])}">'
                f"{escape(number(d[part], kind, signed=True))}</td>" for part in ("observed", "low", "high")))
        rows.append(f'<tr data-metric="{key}"><th scope="row">{escape(label)}</th>{cells}</tr>')
    return f'<table id="metrics"><tr><th>metric</th>{head}</tr>{"".join(rows)}</table>'


def _scale(values: Sequence[float], low_px: float, high_px: float) -> tuple[Any, list[float]]:
    low, high = min(values), max(values)
    pad = (high - low) * 0.08 or (abs(high) * 0.1 or 0.05)
    low, high = low - pad, high + pad
    ticks = [low + (high - low) * i / 4 for i in range(5)]
    return (lambda v: low_px + (v - low) / (high - low) * (high_px - low_px)), ticks


def _plot(curve: Sequence[Mapping[str, Any]], metric: str, chosen: float | None, own: float | None) -> str:
    x, x_ticks = _scale([p["cost_per_query_usd"] for p in curve], _LEFT, _W - _RIGHT)
    y, y_ticks = _scale([p["accuracy"] for p in curve], _H - _BOTTOM, _TOP)
    parts = [f'<svg id="curve" role="img" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" '
             f'aria-label="cost-quality curve">']
    for t in x_ticks:
        parts.append(f'<line class="grid" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{_TOP}" y2="{_H - _BOTTOM}"/>'
                     f'<text x="{x(t):.1f}" y="{_H - _BOTTOM + 18}" text-anchor="middle">{t:.6f}</text>')
    for t in y_ticks:
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>'
                     f'<text x="{_LEFT - 8}" y="{y(t) + 4:.1f}" text-anchor="end">{t:.3f}</text>')
    parts.append(f'<line class="axis" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{_H - _BOTTOM}" y2="{_H - _BOTTOM}"/>'
                 f'<line class="axis" x1="{_LEFT}" x2="{_LEFT}" y1="{_TOP}" y2="{_H - _BOTTOM}"/>'
                 f'<text x="{(_LEFT + _W - _RIGHT) / 2}" y="{_H - 8}" text-anchor="middle">cost per query (USD)</text>'
                 f'<text transform="rotate(-90)" x="{-(_TOP + _H - _BOTTOM) / 2}" y="18" '
                 f'text-anchor="middle">{escape(metric)}</text>')
    points = " ".join(f"{x(p['cost_per_query_usd']):.1f},{y(p['accuracy']):.1f}" for p in curve)
    parts.append(f'<polyline class="curve" points="{points}"/>')
    labels: dict[tuple[str, str], list[str]] = {}  # points at the same spot share one label
    for p in curve:
        share = p["strong_share"]
        cx, cy = f"{x(p['cost_per_query_usd']):.1f}", f"{y(p['accuracy']):.1f}"
        labels.setdefault((cx, cy), []).append(f"{share:g}" + (" (policy)" if share == own else ""))
        parts.append(f'<circle class="{"chosen" if share == chosen else "point"}" cx="{cx}" cy="{cy}" r="5" '
                     f'data-share="{_value(share)}" data-accuracy="{_value(p["accuracy"])}" '
                     f'data-cost="{_value(p["cost_per_query_usd"])}"><title>strong share {share:g}: '
                     f'{p["accuracy"]:.3f} at ${p["cost_per_query_usd"]:.6f}</title></circle>')
    parts += [f'<text x="{float(cx) + 8:.1f}" y="{float(cy) - 8:.1f}">{escape(", ".join(shares))}</text>'
              for (cx, cy), shares in labels.items()]
    parts.append("</svg>")
    return "".join(parts)


def _curve_table(curve: Sequence[Mapping[str, Any]], metric: str) -> str:
    rows = "".join(
        f'<tr data-share="{_value(p["strong_share"])}"><td>{p["strong_share"]:g}</td>'
        f'<td>{p["threshold"]:.4f}</td><td>{p["prompted_examples"]}</td>'
        f'{_cell(p["accuracy"], "score", field="accuracy")}{_cell(p["cost_per_query_usd"], "usd", field="cost")}</tr>'
        for p in curve)
    return (f'<table id="curve-table"><tr><th>strong share</th><th>threshold</th><th>to prompted</th>'
            f"<th>{escape(metric)}</th><th>cost / query (USD)</th></tr>{rows}</table>")


def _options(options: Sequence[Mapping[str, Any]], metric: str) -> str:
    head = "".join(f"<th>{escape(column.format(metric=metric))}</th>" for column in OPTION_HEADER)
    rows = "".join(
        f'<tr data-option="{escape(o["option"])}" data-accuracy="{_value(o["accuracy"])}" '
        f'data-cost="{_value(o["cost_per_query_usd"])}" data-clears="{_value(o["clears_bar"])}" '
        f'data-months="{_value(None if o["break_even"] is None else o["break_even"]["months_to_break_even"])}">'
        + "".join(f"<td>{escape(cell)}</td>" for cell in option_cells(o)) + "</tr>"
        for o in options)
    return f'<table id="options"><tr>{head}</tr>{rows}</table>'


def _recommendation(recommendation: Mapping[str, Any] | None, notes: Sequence[str]) -> str:
    if recommendation is None:
        return "".join(f'<p class="note">{escape(n)}</p>' for n in notes)
    reasons = "".join(f"<li>{escape(r)}</li>" for r in recommendation["reasons"])
    cases = ", ".join(name.replace("_", " ") for name, on in recommendation["cases"].items() if on) or "none"
    return (f'<section id="recommendation" data-verdict="{escape(recommendation["verdict"])}" '
            f'data-share="{_value(recommendation["strong_share"])}"><h2>Recommendation: '
            f'{escape(verdict_title(recommendation))}</h2>'
            f'<p class="headline">{escape(recommendation["headline"])}</p><ul>{reasons}</ul>'
            f"<p>Valid fine-tuning cases that apply: {escape(cases)}.</p></section>")


def render_html(summary: Mapping[str, Any]) -> str:
    metric = summary["metric"]
    recommendation = summary["recommendation"]
    body = [f"<h1>Evaluation of route {escape(summary['route'])}</h1>",
            f'<p class="meta"><span id="examples" data-value="{summary["examples"]}">{summary["examples"]}</span> '
            f"of {summary['examples_in_set']} examples from {escape(summary['dataset'])}; primary metric "
            f"{escape(metric)}; differences are fine-tuned minus prompted with paired bootstrap 95% intervals "
            f"({summary['bootstrap']['samples']} resamples, seed {summary['bootstrap']['seed']}).</p>",
            _recommendation(recommendation, summary.get("notes", ())), "<h2>Metrics per arm</h2>", _metrics(summary)]
    if summary["strategy"]:
        body.append(f'<p id="strategy">{escape(strategy_text(summary["strategy"], summary["examples"]))}</p>')
    if summary["options"]:
        body += ["<h2>Options</h2><p>Each against prompting alone on the same examples (paired bootstrap 95% "
                 "interval); break-even at the stated volume, all traffic on the prompted arm as the "
                 "counterfactual.</p>", _options(summary["options"], metric)]
    if summary["curve"]:
        chosen = recommendation["chosen"]["strong_share"] if recommendation else None
        own = summary["classifier"]["strong_share"]
        body += [f"<h2>Cost-quality curve (classifier {escape(summary['classifier']['model'])})</h2>",
                 "<p>Each point sends the top-scored share of this set to the prompted arm; the orange point is "
                 "the recommendation's choice.</p>", _plot(summary["curve"], metric, chosen, own),
                 _curve_table(summary["curve"], metric)]
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>hybrid-gateway eval: '
            f"{escape(summary['route'])}</title><style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")
