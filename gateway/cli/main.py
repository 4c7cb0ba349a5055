"""``hybrid-gateway``: one console script, one subcommand per job.

Heavy modules (uvicorn, the app, litellm, chromadb) are imported inside the
subcommand that needs them, so ``--help`` and ``policy check`` answer at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import retrieval
import routes.training
from gateway.cli import breakeven, dataset, evaluate, experiments, finetune, keys
from policies import DEFAULT_POLICIES

Command = Callable[[argparse.Namespace], int]


def _policy_check(args: argparse.Namespace) -> int:
    from gateway.model_check import model_problem
    from policies import PolicyLoadError, load_policies

    try:
        policy = load_policies(args.directory, model_problem)
    except PolicyLoadError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print(f"{len(exc.issues)} problem(s) in {args.directory}", file=sys.stderr)
        return 1
    for warning in policy.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"ok: {args.directory}: {len(policy.routes)} route(s), {len(policy.targets)} target(s), "
          f"fingerprint {policy.fingerprint}" + (f", {len(policy.warnings)} warning(s)" if policy.warnings else ""))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from gateway.cli.serve import serve

    return serve(host=args.host, port=args.port, policies=Path(args.policies), workers=args.workers,
                 demo=args.demo, demo_port=args.demo_port, log_level=args.log_level,
                 allow_unauthenticated=args.allow_unauthenticated)


def _demo_upstream(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.demo_upstream import create_demo_app

    uvicorn.run(create_demo_app(args.latency_scale), host=args.host, port=args.port, log_level="warning",
                access_log=False, loop="uvloop", http="httptools")
    return 0


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the OpenAI-compatible gateway")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--policies", default=os.environ.get("HYBRID_GATEWAY_POLICIES", str(DEFAULT_POLICIES)),
                       help="policy directory (default: $HYBRID_GATEWAY_POLICIES or the shipped policies)")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument("--demo", choices=("auto", "on", "off"), default="auto",
                       help="start the built-in demo upstream (auto: when a policy target uses it)")
    serve.add_argument("--demo-port", type=int, default=8090, help="demo upstream port (a free one if taken)")
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    serve.add_argument("--allow-unauthenticated", action="store_true",
                       help="listen on a non-loopback --host without client keys (refused otherwise; "
                            "also $HYBRID_GATEWAY_ALLOW_UNAUTHENTICATED=1)")
    serve.set_defaults(command=_serve)


def _add_policy(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    policy = sub.add_parser("policy", help="policy file tools").add_subparsers(dest="policy_command", required=True)
    check = policy.add_parser("check", help="validate a policy directory; non-zero exit with file:line errors")
    check.add_argument("directory", nargs="?", default=str(DEFAULT_POLICIES))
    check.set_defaults(command=_policy_check)


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser("demo-upstream", help="run the simulated OpenAI-compatible provider")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8090)
    demo.add_argument("--latency-scale", type=float,
                      default=float(os.environ.get("HYBRID_GATEWAY_DEMO_LATENCY_SCALE", "1.0")),
                      help="multiplies simulated latency; 0 for a zero-delay upstream "
                           "(default: $HYBRID_GATEWAY_DEMO_LATENCY_SCALE or 1)")
    demo.set_defaults(command=_demo_upstream)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hybrid-gateway", description="OpenAI-compatible LLM gateway that routes "
                                     "between a prompted large model and a fine-tuned small model.")
    sub = parser.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")
    _add_serve(sub)
    _add_policy(sub)
    _add_demo(sub)
    breakeven.add_cli(sub)
    retrieval.add_cli(sub)
    routes.training.add_cli(sub)
    experiments.add_cli(sub)
    dataset.add_cli(sub)
    finetune.add_cli(sub)
    evaluate.add_cli(sub)
    keys.add_cli(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command: Command = args.command
    return command(args)

