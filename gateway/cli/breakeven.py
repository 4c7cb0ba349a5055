"""``hybrid-gateway breakeven``: when does fine-tuning the small model pay for itself?

Turns command-line figures into :class:`gateway.economics.breakeven.Scenario` objects,
asks :func:`gateway.economics.breakeven.break_even`, and prints a table or JSON. With no
cost options it reproduces the decision guide's four scenarios and notes where
the guide's stated break-even disagrees with its own inputs.

Scenarios come from one source per run (:func:`_scenarios`): the guide, the
figures typed here, or ``--from URL``: each route of a running gateway
(``GET /v1/economics``) with its observed evidence and its own investment,
through the very function the gateway uses (:func:`live_break_even`), so the
two agree unless ``--horizon-months`` overrides the routes' horizons (the
output says whose horizon it used). A route whose traffic is still below the
gateway's minimum observation gets its "not enough traffic yet", not a number.
Every output names the inputs it used (:class:`gateway.economics.breakeven.Evidence`).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import httpx

from gateway.cli.arguments import non_negative, positive, positive_int
from gateway.economics.breakeven import (
    DEFAULT_HORIZON_MONTHS,
    DEFAULT_UPFRONT,
    GUIDE_SCENARIOS,
    BreakEven,
    Evidence,
    Scenario,
    TokenCost,
    break_even,
)
from gateway.economics.observed import LiveInputs, live_break_even, verdict_of
from policies import ARM_NAMES

__all__ = ["add_cli"]

_GUIDE = Evidence(volume="the decision guide's", costs="the decision guide's monthly bills")
API_KEY_ENV = "HYBRID_GATEWAY_API_KEY"
_TOKEN_FIELDS = ("input_per_m", "output_per_m", "tokens_in", "tokens_out")


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register ``breakeven`` on ``subparsers``; the handler is ``args.command(args) -> exit code``."""
    parser = subparsers.add_parser(
        "breakeven", help="months until fine-tuning pays for itself, per monthly volume",
        description=__doc__.splitlines()[0] + " With no cost options: the decision guide's four scenarios.")
    volume = parser.add_argument_group("volume and running costs (each side: monthly, per query or per token)")
    volume.add_argument("--volume", type=non_negative, action="append", metavar="N",
                        help="queries per month (repeatable)")
    for side, label in (("prompted", "prompted large model"), ("fine-tuned", "fine-tuned small model")):
        volume.add_argument(f"--{side}-monthly", type=non_negative, action="append", metavar="USD",
                            help=f"{label} USD/month, one per --volume in the same order (repeatable)")
        volume.add_argument(f"--{side}-per-query", type=non_negative, metavar="USD",
                            help=f"{label} USD per query")
        volume.add_argument(f"--{side}-input-per-m", type=non_negative, metavar="USD",
                            help=f"{label} USD per million input tokens")
        volume.add_argument(f"--{side}-output-per-m", type=non_negative, metavar="USD",
                            help=f"{label} USD per million output tokens")
        volume.add_argument(f"--{side}-tokens-in", type=non_negative, metavar="N",
                            help=f"{label} input tokens per query")
        volume.add_argument(f"--{side}-tokens-out", type=non_negative, metavar="N",
                            help=f"{label} output tokens per query")
    fine_tuning = parser.add_argument_group("fine-tuning's own costs")
    fine_tuning.add_argument("--upfront", type=non_negative, default=DEFAULT_UPFRONT, metavar="USD",
                             help=f"one-off fine-tuning cost (default {DEFAULT_UPFRONT:,.0f})")
    fine_tuning.add_argument("--maintenance-monthly", type=non_negative, default=0.0, metavar="USD",
                             help="fine-tuned model upkeep per month (default 0)")
    fine_tuning.add_argument("--retraining-cost", type=non_negative, default=0.0, metavar="USD",
                             help="cost of one retraining, amortised over its cadence (default 0)")
    fine_tuning.add_argument("--retraining-every-months", type=positive, metavar="N",
                             help="months between retrainings")
    parser.add_argument("--horizon-months", type=positive_int, metavar="N",
                        help=f"months to count savings over and to trust a pay-back within (default "
                             f"{DEFAULT_HORIZON_MONTHS}; with --from, each route's own horizon)")
    parser.add_argument("--from", dest="from_url", metavar="URL",
                        help="use the observed figures of a running gateway (its routes with an economics block)")
    parser.add_argument("--api-key", default=os.environ.get(API_KEY_ENV), metavar="KEY",
                        help=f"client API key for --from, when the gateway requires one (default ${API_KEY_ENV})")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.set_defaults(command=functools.partial(_run, parser))
    return parser


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    try:
        if args.from_url:
            live = [_LiveRow(inputs, live_break_even(inputs, args.horizon_months), args.horizon_months)
                    for inputs in _observed(args)]
            text = _live_table(live) if not args.json else ""
            found: Sequence[_Row | _LiveRow] = live
        else:
            rows = [_Row(result, _guide_note(result)) for result in map(break_even, _scenarios(args))]
            text = _table(rows, args) if not args.json else ""
            found = rows
    except ValueError as exc:  # inconsistent options the parser could not see one by one
        parser.error(str(exc))
    if args.json:
        json.dump([row.as_json() for row in found], out, indent=2)
        out.write("\n")
    else:
        out.write(text)
    return 0


def _observed(args: argparse.Namespace) -> list[LiveInputs]:
    """Each route of a running gateway with an economics block: its observed evidence and investment."""
    headers = {"authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    url = args.from_url.rstrip("/") + "/v1/economics"
    try:
        response = httpx.get(url, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise ValueError(f"cannot read {url}: {exc}") from exc
    if response.status_code == 401:
        raise ValueError(f"{url} needs an API key: give --api-key or set ${API_KEY_ENV}"
                         if not args.api_key else f"{url} refused the API key given (HTTP 401)")
    if response.status_code != 200:
        raise ValueError(f"cannot read {url}: HTTP {response.status_code} {_error_message(response)}".rstrip())
    try:
        routes = response.json()["routes"]
        if not routes:
            raise ValueError(f"{args.from_url} has no route with an economics block")
        return [LiveInputs.from_json(route) for route in routes]
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{url} does not publish the economics window this version reads ({exc!r})") from exc


def _error_message(response: httpx.Response) -> str:
    """The OpenAI-style error message of a refusal, when it has one."""
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return ""


def _scenarios(args: argparse.Namespace) -> list[Scenario]:
    """The scenarios this run asks about: the guide's when no cost is given, else the typed figures."""
    common: dict[str, Any] = {
        "upfront": args.upfront, "maintenance_monthly": args.maintenance_monthly,
        "retraining_cost": args.retraining_cost, "retraining_every_months": args.retraining_every_months,
        "horizon_months": _horizon(args),
    }
    if args.retraining_cost > 0 and args.retraining_every_months is None:
        raise ValueError("--retraining-cost needs --retraining-every-months (how often it is paid)")
    sides = {side: _side_costs(args, side) for side in ARM_NAMES}
    if not any(sides.values()):
        if args.volume:
            raise ValueError("--volume needs costs for both sides (monthly, per query or per token); "
                             "omit it to see the guide's scenarios")
        return [Scenario(volume=g.scenario.volume, prompted_monthly=g.scenario.prompted_monthly,
                         fine_tuned_monthly=g.scenario.fine_tuned_monthly, evidence=_GUIDE, **common)
                for g in GUIDE_SCENARIOS]
    if not args.volume:
        raise ValueError("give at least one --volume (queries per month)")
    for side, costs in sides.items():
        flag = side.replace("_", "-")
        if not costs:
            raise ValueError(f"no {flag} cost: give --{flag}-monthly, --{flag}-per-query "
                             f"or all four --{flag}-input-per-m/-output-per-m/-tokens-in/-tokens-out")
        if len(costs) > 1:
            raise ValueError(f"give the {flag} cost one way only, got {' and '.join(costs)}")
        monthly = getattr(args, f"{side}_monthly")
        if monthly is not None and len(monthly) != len(args.volume):
            raise ValueError(f"--{flag}-monthly is paired with --volume: got {len(monthly)} cost(s) "
                             f"for {len(args.volume)} volume(s)")
    scenarios = []
    for i, volume in enumerate(args.volume):
        per_side: dict[str, Any] = {}
        for side in ARM_NAMES:
            monthly = getattr(args, f"{side}_monthly")
            per_side[f"{side}_monthly"] = monthly[i] if monthly is not None else None
            per_side[f"{side}_per_query"] = getattr(args, f"{side}_per_query")
            per_side[f"{side}_tokens"] = _tokens(args, side)
        scenarios.append(Scenario(volume=volume, **per_side, **common))
    return scenarios


def _horizon(args: argparse.Namespace) -> int:
    return args.horizon_months if args.horizon_months is not None else DEFAULT_HORIZON_MONTHS


def _side_costs(args: argparse.Namespace, side: str) -> list[str]:
    """Which ways the cost of ``side`` was given, as option names; partial token prices are an error."""
    flag = side.replace("_", "-")
    given = [f"--{flag}-{kind}" for kind in ("monthly", "per-query")
             if getattr(args, f"{side}_{kind.replace('-', '_')}") is not None]
    tokens = [name for name in _TOKEN_FIELDS if getattr(args, f"{side}_{name}") is not None]
    if tokens and len(tokens) != len(_TOKEN_FIELDS):
        missing = ", ".join(f"--{flag}-{name.replace('_', '-')}" for name in _TOKEN_FIELDS if name not in tokens)
        raise ValueError(f"per-token {flag} cost is missing {missing}")
    if tokens:
        given.append(f"--{flag}-input-per-m...")
    return given


def _tokens(args: argparse.Namespace, side: str) -> TokenCost | None:
    values = [getattr(args, f"{side}_{name}") for name in _TOKEN_FIELDS]
    if any(v is None for v in values):
        return None
    return TokenCost(*values)


def _guide_note(result: BreakEven) -> str | None:
    notes = (guide.note(result) for guide in GUIDE_SCENARIOS)
    return next((note for note in notes if note), None)


@dataclass(frozen=True)
class _Row:
    result: BreakEven
    guide_note: str | None

    def as_json(self) -> dict[str, Any]:
        r = self.result
        return {
            "volume": _json_number(r.scenario.volume),
            "prompted_monthly": float(r.prompted_monthly),
            "fine_tuned_monthly": float(r.fine_tuned_monthly),
            "savings_monthly": float(r.savings_monthly),
            "months_to_break_even": r.months_to_break_even,
            "cumulative_savings_at_horizon": float(r.cumulative_savings_at_horizon),
            "horizon_months": r.scenario.horizon_months,
            "verdict": r.verdict,
            "guide_note": self.guide_note,
            "inputs": r.scenario.evidence.as_json(),
        }


@dataclass(frozen=True)
class _LiveRow:
    """One route of ``--from``: its evidence, and the break-even when the evidence suffices."""

    inputs: LiveInputs
    result: BreakEven | None
    horizon_override: int | None
    """``--horizon-months``; None: each route's own horizon."""

    @property
    def horizon(self) -> int:
        return self.horizon_override or math.ceil(self.inputs.horizon_months)

    def as_json(self) -> dict[str, Any]:
        i, r = self.inputs, self.result
        return {
            "route": i.route, "volume": i.monthly_queries,
            "prompted_per_query": i.prompted_per_query, "fine_tuned_per_query": i.actual_per_query,
            "prompted_monthly": None if r is None else r.prompted_monthly,
            "fine_tuned_monthly": None if r is None else r.fine_tuned_monthly,
            "savings_monthly": None if r is None else r.savings_monthly,
            "months_to_break_even": None if r is None else r.months_to_break_even,
            "cumulative_savings_at_horizon": None if r is None else r.cumulative_savings_at_horizon,
            "horizon_months": self.horizon,
            "horizon_from": "--horizon-months" if self.horizon_override else "the route's policy",
            "upfront": i.upfront_usd, "fixed_monthly": i.fixed_monthly_usd,
            "enough_traffic": not i.shortfall, "missing": i.shortfall.as_json(),
            "verdict": verdict_of(i, r), "inputs": i.evidence().as_json(),
        }


def _live_table(rows: Sequence[_LiveRow]) -> str:
    """One line per route, then what each route's figures rest on."""
    header = ("route", "queries/mo", "prompted $/query", "hybrid $/query", "savings $/mo", "break-even mo",
              "horizon mo", "net @horizon", "verdict")
    body = []
    for row in rows:
        i, r = row.inputs, row.result
        volume, prompted, actual = i.monthly_queries, i.prompted_per_query, i.actual_per_query
        body.append((i.route, "—" if volume is None else f"{volume:,.0f}",
                     "—" if prompted is None else f"{prompted:.6f}", "—" if actual is None else f"{actual:.6f}",
                     "—" if r is None else _money(r.savings_monthly),
                     "—" if r is None else _months(r.months_to_break_even), str(row.horizon),
                     "—" if r is None else _money(r.cumulative_savings_at_horizon), verdict_of(i, r)))
    lines = _columns(header, body)
    lines.append("")
    for row in rows:
        i = row.inputs
        whose = "--horizon-months" if row.horizon_override else "the route's"
        lines.append(f"{i.route}: upfront ${i.upfront_usd:,.2f}; maintenance and retraining "
                     f"${i.fixed_monthly_usd:,.2f}/mo; horizon {row.horizon} months ({whose}); {i.evidence()}")
    return "\n".join(lines) + "\n"


def _columns(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """Right-aligned columns, the last (the verdict) left as it is."""
    widths = [max(len(line[i]) for line in (header, *body)) for i in range(len(header) - 1)]

    def fmt(line: Sequence[str]) -> str:
        cells = [cell.rjust(width) for cell, width in zip(line[:-1], widths, strict=True)]
        return "  ".join([*cells, line[-1]]).rstrip()

    return [fmt(header), *map(fmt, body)]


def _table(rows: Sequence[_Row], args: argparse.Namespace) -> str:
    horizon = _horizon(args)
    header = ("queries/mo", "prompted $/mo", "fine-tuned $/mo", "savings $/mo", "break-even mo",
              f"net @{horizon} mo", "verdict")
    body = [(f"{r.scenario.volume:,.0f}", _money(r.prompted_monthly), _money(r.fine_tuned_monthly),
             _money(r.savings_monthly), _months(r.months_to_break_even),
             _money(r.cumulative_savings_at_horizon), r.verdict)
            for r in (row.result for row in rows)]
    retraining = (f"${args.retraining_cost:,.0f} every {args.retraining_every_months:g} months"
                  if args.retraining_every_months else "none")
    lines = [f"upfront ${args.upfront:,.0f}; maintenance ${args.maintenance_monthly:,.0f}/mo; "
             f"retraining {retraining}; horizon {horizon} months", f"inputs: {rows[0].result.scenario.evidence}",
             "", *_columns(header, body)]
    notes = [row.guide_note for row in rows if row.guide_note]
    if notes:
        lines += ["", "Where the decision guide is wrong:", *(f"  - {note}" for note in notes)]
    return "\n".join(lines) + "\n"


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _months(value: float | None) -> str:
    if value is None:
        return "never"
    return f"{value:.2f}" if value < 10 else f"{value:,.1f}"


def _json_number(value: float) -> float | int:
    return int(value) if value == int(value) else value
