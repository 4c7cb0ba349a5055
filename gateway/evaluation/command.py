"""The ``eval`` run: load, replay through the gateway, score, summarise, write and print.

Options are declared in :mod:`gateway.cli.evaluate`; command-line figures
override the route's policy (classifier, economics) wherever both exist. The
route's strategy is the gateway's own (it may run other policies than
``--policies``); on a route with one (cascade, ensemble) every example is also
replayed through the route unforced, the journal's ``strategy`` arm.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

import orjson

from gateway.economics.breakeven import Investment
from gateway.evaluation.curve import SHARES, Scores, score_examples
from gateway.evaluation.dataset import DatasetError, Example, ResponseLog, load_examples
from gateway.evaluation.local import GatewayNotReady, in_process_gateway, served_strategy, wait_ready
from gateway.evaluation.report import render_html
from gateway.evaluation.runner import EvaluationAborted, RunOptions, replay
from gateway.evaluation.summary import Judgement, summarise
from gateway.evaluation.table import summary_text
from gateway.evaluation.vocabulary import STRATEGY
from policies import ARM_NAMES, PolicyLoadError, PolicySet, Route, load_policies


def _investment(args: argparse.Namespace, route: Route | None) -> Investment | None:
    """Command-line figures over the route's economics block; None without a monthly volume."""
    economics = route.economics if route is not None else None
    figures: dict[str, Any] = {} if economics is None else asdict(Investment.from_policy(economics))
    given = {"monthly_volume": args.monthly_volume, "upfront": args.upfront,
             "maintenance_monthly": args.maintenance_monthly, "retraining_cost": args.retraining_cost,
             "retraining_every_months": args.retraining_every_months, "horizon_months": args.horizon_months}
    figures.update((name, value) for name, value in given.items() if value is not None)
    return Investment(**figures) if "monthly_volume" in figures else None


@contextlib.contextmanager
def _gateway(args: argparse.Namespace) -> Iterator[str]:
    if args.url:
        yield args.url
        return
    with in_process_gateway(args.policies) as url:
        yield url


def _route(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Route | None:
    try:
        policy: PolicySet = load_policies(args.policies)
    except PolicyLoadError as exc:
        parser.error(f"the policies in {args.policies} are invalid:\n{exc}")
    route = policy.routes.get(args.route)
    if route is None and not args.url:
        parser.error(f"no route {args.route!r} in {args.policies} (routes: {', '.join(sorted(policy.routes))})")
    return route


def run(parser: argparse.ArgumentParser, args: argparse.Namespace, out: TextIO) -> int:
    """Exit code 0 when a summary was written; 1 when the gateway was not usable; usage errors exit 2."""
    try:
        every_example = load_examples(args.data)
        schema = json.loads(args.json_schema.read_text()) if args.json_schema else None
    except (DatasetError, OSError, ValueError) as exc:
        parser.error(str(exc))
    if args.metric == "json_valid" and schema is None:
        parser.error("--metric json_valid needs --json-schema")
    route = _route(parser, args)
    examples = every_example[:args.limit]
    directory = args.out or Path(f"eval-{args.route}")
    try:
        with ResponseLog(directory / "responses.jsonl", every_example) as log, _gateway(args) as url:
            wait_ready(url, args.ready_timeout)
            strategy = _strategy(url, args, route)
            arms = args.arms if strategy == "route" else (*args.arms, STRATEGY)
            options = RunOptions(url=url, route=args.route, arms=arms, strategy=strategy,
                                 concurrency=args.concurrency, attempts=args.retries + 1, backoff_s=args.backoff,
                                 timeout_s=args.timeout, api_key=args.api_key, progress=not args.no_progress)
            replay(options, examples, log)
            records = dict(log.records)
    except (DatasetError, EvaluationAborted, GatewayNotReady) as exc:
        print(f"eval: {exc}", file=sys.stderr)
        return 1
    summary, scored = summarise(
        examples, records, arms, route=args.route, dataset=str(args.data), set_size=len(every_example),
        judgement=_judgement(args, route), schema=schema, scores=_scores(args, route, examples),
        shares=_shares(route), strategy=strategy)
    _write(directory, summary, scored)
    if args.json:
        json.dump(summary, out, indent=2)
        out.write("\n")
    else:
        out.write(summary_text(summary))
    print(f"eval: wrote {directory}/summary.json, report.html, scores.jsonl", file=sys.stderr)
    return 0


def _strategy(url: str, args: argparse.Namespace, route: Route | None) -> str:
    """The gateway's word on the route's strategy; a gateway that does not list it, the local policy's."""
    served = served_strategy(url, args.route, args.api_key)
    if served is not None:
        return served
    return route.strategy if route is not None else "route"


def _judgement(args: argparse.Namespace, route: Route | None) -> Judgement:
    return Judgement(metric=args.metric, required_accuracy=args.required_accuracy, tolerance=args.tolerance,
                     style_task=args.style_task, investment=_investment(args, route), seed=args.seed,
                     samples=args.bootstrap_samples)


def _shares(route: Route | None) -> tuple[float, ...]:
    """The tenths, plus the route's own strong_share when it sets one."""
    own = route.classifier.strong_share if route is not None and route.classifier is not None else None
    return tuple(sorted({*SHARES, *([own] if own is not None else [])}))


def _scores(args: argparse.Namespace, route: Route | None, examples: Sequence[Example]) -> Scores | None:
    if set(args.arms) != set(ARM_NAMES):
        return None
    config = route.classifier if route is not None else None
    return score_examples(config, args.policies, [e.messages for e in examples], _shares(route))


def _write(directory: Path, summary: dict[str, Any], scored: Sequence[dict[str, Any]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "scores.jsonl").write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in scored))
    (directory / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (directory / "report.html").write_text(render_html(summary), encoding="utf-8")
