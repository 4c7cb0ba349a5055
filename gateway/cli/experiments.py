"""``hybrid-gateway experiments report NAME``: the A/B report in a terminal.

It reads the same outcome store the gateway writes (Redis when
``--redis-url``/``HYBRID_GATEWAY_REDIS_URL`` is set, else the local journal
under the data directory), or asks a running gateway with ``--url``. Exit 0 with
a report, 1 when there is nothing to report (an unknown experiment, a data
directory that does not exist, no outcomes recorded: an empty report would look
like an answer), 2 when the policies do not load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import httpx
import orjson

from gateway.pipeline.experiments import observations
from gateway.tables import render_table
from policies import DEFAULT_POLICIES, PolicyLoadError, SharedState, load_policies, outcome_store, report
from policies.experiments.statistics import ExperimentReport, TestResult


async def _local_report(args: argparse.Namespace) -> int:
    try:
        experiment = load_policies(args.policies).experiments.get(args.name)
    except PolicyLoadError as exc:
        print(exc, file=sys.stderr)
        return 2
    if experiment is None:
        print(f"no experiment named {args.name!r} in {args.policies}", file=sys.stderr)
        return 1
    data_dir = Path(args.data_dir)
    if not args.redis_url and not data_dir.is_dir():
        print(f"no data directory at {data_dir} (the gateway's --data-dir or $HYBRID_GATEWAY_DATA_DIR)",
              file=sys.stderr)
        return 1
    state = SharedState.connect(args.redis_url, prefix=args.redis_prefix)
    try:
        store = outcome_store(state, data_dir / "experiments")
        seen = await observations(store, args.name)
    finally:
        await state.aclose()
    if not seen:
        where = f"Redis at {args.redis_url}" if args.redis_url else data_dir / "experiments"
        print(f"no outcomes recorded for experiment {args.name!r} in {where}", file=sys.stderr)
        return 1
    result = report(list(experiment.variants), seen)
    print(orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2).decode() if args.json else experiment_text(result))
    return 0


def _remote_report(args: argparse.Namespace) -> int:
    headers = {"authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    try:
        response = httpx.get(f"{args.url.rstrip('/')}/v1/experiments/{args.name}", headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        print(f"cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(response.json().get("error", {}).get("message", response.text), file=sys.stderr)
        return 1
    print(orjson.dumps(response.json(), option=orjson.OPT_INDENT_2).decode())
    return 0


def _run(args: argparse.Namespace) -> int:
    return _remote_report(args) if args.url else asyncio.run(_local_report(args))


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    experiments = subparsers.add_parser("experiments", help="A/B experiment reports")
    commands = experiments.add_subparsers(dest="experiments_command", required=True)
    reporting = commands.add_parser("report", help="per-variant outcomes, intervals and a significance verdict")
    reporting.add_argument("name")
    reporting.add_argument("--url", help="ask a running gateway instead of reading the store (prints JSON)")
    reporting.add_argument("--api-key", default=os.environ.get("HYBRID_GATEWAY_API_KEY"))
    reporting.add_argument("--policies", default=os.environ.get("HYBRID_GATEWAY_POLICIES", str(DEFAULT_POLICIES)))
    reporting.add_argument("--data-dir", default=os.environ.get("HYBRID_GATEWAY_DATA_DIR", "var"))
    reporting.add_argument("--redis-url", default=os.environ.get("HYBRID_GATEWAY_REDIS_URL") or None)
    reporting.add_argument("--redis-prefix", default=os.environ.get("HYBRID_GATEWAY_REDIS_PREFIX", "hg:"))
    reporting.add_argument("--json", action="store_true")
    reporting.set_defaults(command=_run)


def experiment_text(experiment: ExperimentReport) -> str:
    """The report as aligned text: one row per variant, then each comparison with its verdict."""
    level = f"{1 - experiment.alpha:.0%}"
    rows = [["variant", "n", "crossed", "feedback", f"success ({level} CI)", f"score ({level} CI)",
             "p50 ms", "p95 ms", "$/request"]]
    for s in experiment.variants:
        success = (f"{s.success.rate:.3f} [{s.success.ci_low:.3f}, {s.success.ci_high:.3f}]"
                   if s.success else "-")
        score = "-"
        if s.score is not None:
            score = (f"{s.score.mean:.3f} [{s.score.ci_low:.3f}, {s.score.ci_high:.3f}]"
                     if s.score.ci_low is not None and s.score.ci_high is not None else f"{s.score.mean:.3f}")
        rows.append([s.name, str(s.n), str(s.excluded_crossed), str(s.n_feedback), success, score,
                     _number(s.latency_p50_ms, "{:.0f}"), _number(s.latency_p95_ms, "{:.0f}"),
                     _number(s.cost_per_request_usd, "{:.5f}")])
    lines = render_table(rows)
    for comparison in experiment.comparisons:
        lines.append("")
        lines.append(f"{comparison.variant} vs {comparison.control} (control)")
        for label, test in (("success rate", comparison.success), ("mean score", comparison.score)):
            lines.append(f"  {label:<13}{_test_text(test, level)}")
            lines.append(f"  {'':<13}-> {test.verdict}")
    if experiment.ignored_unknown:
        lines.append("")
        lines.append(f"{experiment.ignored_unknown} observations of variants not in this experiment were ignored")
    return "\n".join(lines)


def _test_text(test: TestResult, level: str) -> str:
    if test.statistic is None or test.p_value is None:
        return f"n={test.n_control}/{test.n_variant}"
    symbol = "z" if test.metric == "success_rate" else "t"
    df = f" df={test.df:.1f}" if test.df is not None else ""
    return (f"diff {test.difference:+.3f} [{test.ci_low:+.3f}, {test.ci_high:+.3f}] ({level} CI)  "
            f"{symbol}={test.statistic:.3f}{df}  p={test.p_value:.4f}  n={test.n_control}/{test.n_variant}")


def _number(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)
