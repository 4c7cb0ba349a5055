"""``hybrid-gateway eval``: replay a test set through a route's arms and say which approach to run.

Writes into ``--out``: ``responses.jsonl`` (the resumable journal of calls),
``scores.jsonl`` (each call with its quality scores), ``summary.json`` and
``report.html``; prints a table (or the summary with ``--json``). This module
only declares the options, so ``hybrid-gateway --help`` stays fast; the run
itself is :mod:`gateway.evaluation.command`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO

from gateway.cli.arguments import non_negative, positive, positive_int
from gateway.economics.breakeven import DEFAULT_HORIZON_MONTHS, DEFAULT_UPFRONT
from gateway.evaluation.vocabulary import DEFAULT_TOLERANCE, QUALITY
from policies import ARM_NAMES, DEFAULT_POLICIES

__all__ = ["add_cli"]



def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register ``eval``; the handler is ``args.command(args) -> exit code``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "eval", help="measure the prompted and fine-tuned arms on a test set",
        description="Replay a test set through a route's arms, measure the gap and say which approach to run.")
    parser.add_argument("--data", required=True, type=Path, metavar="FILE.jsonl",
                        help='test set: one {"messages": [...], "expected": "...", "metadata": {...}} per line')
    parser.add_argument("--route", required=True, help="the route (public model name) to evaluate")
    parser.add_argument("--arms", type=_arms, default=ARM_NAMES, help="comma-separated (default prompted,fine_tuned); a route with a strategy (cascade) "
                             "is also replayed unforced")
    parser.add_argument("--out", type=Path, help="output directory (default eval-ROUTE); rerun to resume")
    run = parser.add_argument_group("running")
    run.add_argument("--url", help="a running gateway (default: start one in this process on loopback)")
    run.add_argument("--policies", type=Path,
                     default=Path(os.environ.get("HYBRID_GATEWAY_POLICIES", str(DEFAULT_POLICIES))),
                     help="policy directory: the in-process gateway's, and the route's classifier and "
                          "economics (default: $HYBRID_GATEWAY_POLICIES or the shipped policies)")
    run.add_argument("--api-key", default=os.environ.get("HYBRID_GATEWAY_EVAL_API_KEY"),
                     help="bearer key for a gateway with keys (default $HYBRID_GATEWAY_EVAL_API_KEY)")
    run.add_argument("--concurrency", type=positive_int, default=4, metavar="N", help="calls in flight (default 4)")
    run.add_argument("--retries", type=int, choices=range(0, 11), default=2, metavar="N",
                     help="retries per call on transport errors, 429 and 5xx (default 2)")
    run.add_argument("--backoff", type=positive, default=0.5, metavar="S",
                     help="wait before the first retry, doubling after each, plus up to as much jitter (default 0.5)")
    run.add_argument("--timeout", type=positive, default=120.0, metavar="S", help="per call (default 120)")
    run.add_argument("--ready-timeout", type=positive, default=60.0, metavar="S",
                     help="how long to wait for the gateway's /readyz (default 60)")
    run.add_argument("--limit", type=positive_int, metavar="K", help="only the first K examples")
    run.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    judge = parser.add_argument_group("judging")
    judge.add_argument("--metric", choices=QUALITY, default="f1",
                       help="primary metric for accuracy, the curve and the verdict (default f1)")
    judge.add_argument("--json-schema", type=Path, metavar="FILE", help="JSON schema the answers must conform to")
    judge.add_argument("--required-accuracy", type=_fraction, metavar="X",
                       help="the accuracy the task needs, 0-1 (default: as good as prompting)")
    judge.add_argument("--tolerance", type=_fraction, default=DEFAULT_TOLERANCE, metavar="X",
                       help=f"accuracy loss accepted as 'as good' (default {DEFAULT_TOLERANCE})")
    judge.add_argument("--style-task", action="store_true",
                       help="the task is style replication (the guide's second valid case)")
    judge.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    judge.add_argument("--bootstrap-samples", type=positive_int, default=2000, metavar="N")
    money = parser.add_argument_group("break-even (default: the route's economics block)")
    money.add_argument("--monthly-volume", type=non_negative, metavar="N", help="queries per month")
    money.add_argument("--upfront", type=non_negative, metavar="USD",
                       help=f"one-off fine-tuning cost (default {DEFAULT_UPFRONT:,.0f})")
    money.add_argument("--maintenance-monthly", type=non_negative, metavar="USD")
    money.add_argument("--retraining-cost", type=non_negative, metavar="USD")
    money.add_argument("--retraining-every-months", type=positive, metavar="N")
    money.add_argument("--horizon-months", type=positive_int, metavar="N",
                       help=f"(default {DEFAULT_HORIZON_MONTHS})")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    parser.set_defaults(command=lambda args: _run(parser, args))
    return parser


def _arms(text: str) -> tuple[str, ...]:
    arms = tuple(dict.fromkeys(a.strip() for a in text.split(",") if a.strip()))
    if not arms or not set(arms) <= set(ARM_NAMES):
        raise argparse.ArgumentTypeError(f"arms are {' and/or '.join(ARM_NAMES)}, got {text!r}")
    return arms


def _fraction(text: str) -> float:
    value = non_negative(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, out: TextIO | None = None) -> int:
    from gateway.evaluation.command import run  # the gateway app, uvicorn and the classifiers load only now

    return run(parser, args, out if out is not None else sys.stdout)
