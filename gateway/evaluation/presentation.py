"""What the table and the HTML report show, and how numbers are written, defined once for both."""

from __future__ import annotations

from typing import Literal

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
            "neither": "neither arm meets the bar"}


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
