"""``hybrid-gateway finetune submit|status|cancel``: run an exported dataset's fine-tuning job (docs/capture.md).

The ``openai`` SDK talks to ``--base-url`` (default: ``$OPENAI_BASE_URL``, else OpenAI) with ``--api-key``
(default: ``$OPENAI_API_KEY``). ``status`` prints the job's progress and, once it succeeded, the candidate
target and the route lines that start its shadow test. Exit 0 when the job is running or succeeded, 1 when
it failed or was cancelled, 2 when the request cannot be made.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from gateway.cli.arguments import positive, positive_int


def _client(args: argparse.Namespace) -> Any:
    from openai import OpenAI

    key = args.api_key or os.environ.get("OPENAI_API_KEY")
    if not key:
        raise SystemExit("finetune: set OPENAI_API_KEY (or --api-key): the fine-tuning API needs your key")
    return OpenAI(api_key=key, base_url=args.base_url or os.environ.get("OPENAI_BASE_URL") or None, max_retries=2)


def _submit(args: argparse.Namespace) -> int:
    import openai

    from gateway.finetune import submit
    from gateway.finetune.jobs import FineTuneError

    try:
        done = submit(_client(args), Path(args.dataset), args.model, args.suffix, args.epochs)
    except (FineTuneError, openai.OpenAIError) as exc:
        print(f"cannot submit: {exc}", file=sys.stderr)
        return 2
    print(f"submitted {done.job_id}: {done.model}, {done.epochs} epochs, training file {done.training_file}, "
          f"validation file {done.validation_file or '-'}; follow it with: hybrid-gateway finetune status "
          f"{args.dataset}")
    return 0


def _upfront(dataset: Path | None) -> tuple[str | None, float | None]:
    if dataset is None or not (dataset / "manifest.json").exists():
        return None, None
    manifest = orjson.loads((dataset / "manifest.json").read_bytes())
    return manifest.get("route"), manifest.get("estimated_training_cost_usd")


def _status(args: argparse.Namespace) -> int:
    import time

    import openai

    from gateway.finetune import candidate_for, progress
    from gateway.finetune.jobs import FineTuneError, job_id_of
    from gateway.finetune.route_edit import RouteEditError

    try:
        client = _client(args)
        job_id = job_id_of(args.job)
        now = progress(client, job_id)
        while args.wait and not now.finished:
            time.sleep(args.poll_s)
            now = progress(client, job_id)
    except (FineTuneError, openai.OpenAIError) as exc:
        print(f"cannot read the job: {exc}", file=sys.stderr)
        return 2
    steps = f"step {now.step}/{now.total_steps}" if now.step is not None else "no steps yet"
    losses = (f"training loss {now.train_loss:.4f}, validation loss "
              f"{'-' if now.valid_loss is None else f'{now.valid_loss:.4f}'}" if now.train_loss is not None else "")
    print(f"{now.job_id}: {now.status}, {steps}{'; ' + losses if losses else ''}"
          f"{f'; {now.trained_tokens} trained tokens' if now.trained_tokens else ''}")
    if now.error:
        print(f"error: {now.error}")
    if now.status in ("failed", "cancelled"):
        return 1
    if now.status != "succeeded" or now.fine_tuned_model is None:
        return 0
    dataset = Path(args.job) if Path(args.job).is_dir() else None
    route, cost = _upfront(dataset)
    candidate = candidate_for(now.fine_tuned_model, args.route or route or "ROUTE", args.shadow_share,
                              args.target_name, cost if args.set_upfront else None, now.finished_at)
    print(f"fine-tuned model: {now.fine_tuned_model}; checkpoints: {', '.join(now.checkpoints) or '-'}")
    if not args.into:
        print(candidate.target_yaml(), end="")
        print(candidate.route_edits())
        return 0
    try:
        written = candidate.write(Path(args.into))
    except FileExistsError as exc:
        print(f"cannot write the candidate: {exc}", file=sys.stderr)
        return 2
    except RouteEditError as exc:
        print(f"wrote {Path(args.into) / (candidate.target + '.yaml')}; the route is yours to edit ({exc}):")
        print(candidate.route_edits())
        return 0
    print("wrote " + " and ".join(str(path) for path in written) + f": routes.{candidate.route} now shadows "
          f"{candidate.shadow_share:g} of its traffic to {candidate.target}")
    return 0


def _cancel(args: argparse.Namespace) -> int:
    import openai

    from gateway.finetune import cancel
    from gateway.finetune.jobs import FineTuneError, job_id_of

    try:
        job_id = job_id_of(args.job)
        print(f"{job_id}: {cancel(_client(args), job_id)}")
    except (FineTuneError, openai.OpenAIError) as exc:
        print(f"cannot cancel: {exc}", file=sys.stderr)
        return 2
    return 0


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", help="the fine-tuning API (default: $OPENAI_BASE_URL, else OpenAI's)")
    parser.add_argument("--api-key", help="default: $OPENAI_API_KEY")


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    finetune = subparsers.add_parser("finetune", help="run a dataset's fine-tuning job (OpenAI's API)")
    commands = finetune.add_subparsers(dest="finetune_command", required=True)
    submitting = commands.add_parser("submit", help="upload an exported dataset and start its job")
    submitting.add_argument("dataset", help="a directory written by hybrid-gateway dataset export")
    submitting.add_argument("--model", help="the base model (default: the manifest's)")
    submitting.add_argument("--suffix", help="a name for the fine-tuned model (OpenAI's suffix)")
    submitting.add_argument("--epochs", type=positive_int, help="default: the manifest's")
    _connection(submitting)
    submitting.set_defaults(command=_submit)
    status = commands.add_parser("status", help="progress and losses; once done, the candidate target")
    status.add_argument("job", help="a job id, or the dataset directory it was submitted from")
    status.add_argument("--wait", action="store_true", help="poll until the job has finished")
    status.add_argument("--poll-s", type=float, default=30.0)
    status.add_argument("--route", help="the route to shadow (default: the dataset's)")
    status.add_argument("--shadow-share", type=positive, default=0.1)
    status.add_argument("--target-name", help="the candidate target's name (default: from the model id)")
    status.add_argument("--into", help="write the candidate target into this policy directory")
    status.add_argument("--set-upfront", action="store_true",
                        help="suggest the dataset's estimated training cost as the route's economics.upfront_usd")
    _connection(status)
    status.set_defaults(command=_status)
    cancelling = commands.add_parser("cancel", help="cancel a job")
    cancelling.add_argument("job", help="a job id, or the dataset directory it was submitted from")
    _connection(cancelling)
    cancelling.set_defaults(command=_cancel)
