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

from gateway.experiments import observations
from gateway.settings import DEFAULT_POLICIES
from policies import PolicyLoadError, SharedState, load_policies, outcome_store, render_table, report


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
    print(orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2).decode() if args.json else render_table(result))
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


def add_cli(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
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
