"""``hybrid-gateway dataset export``: a route's captures as a fine-tuning dataset (docs/capture.md).

Reads the capture store the gateway writes (PostgreSQL at ``--database-url`` /
``HYBRID_GATEWAY_DATABASE_URL``, else ``captures.sqlite3`` under the data directory) and writes
``train.jsonl``, ``validation.jsonl``, ``test.jsonl`` and ``manifest.json`` under ``--out``. Exit 0 with
the manifest's summary, 2 when the dataset cannot be made (policies, provider, too few examples).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from gateway.capture import CaptureStore, CaptureStoreError
from gateway.cli.arguments import non_negative, positive, positive_int
from policies import DEFAULT_POLICIES, PolicyLoadError, PolicySet, load_policies

T = TypeVar("T")


def _moment(text: str) -> float:
    """An ISO 8601 time (UTC when it names no zone) or epoch seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {text!r} (ISO 8601, e.g. 2026-12-01T00:00:00Z)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _share(text: str) -> float:
    value = non_negative(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be below 1, got {text}")
    return value


def _with_store(args: argparse.Namespace, verb: str, work: Callable[[CaptureStore, PolicySet], T],
                refused: tuple[type[Exception], ...]) -> T | None:
    """``work`` on the policies and the migrated capture store; None (said on stderr) when either fails."""
    try:
        policy = load_policies(args.policies)
    except PolicyLoadError as exc:
        print(exc, file=sys.stderr)
        return None
    failures: tuple[type[Exception], ...] = (CaptureStoreError, *refused)
    try:
        store = CaptureStore.open(args.database_url, Path(args.data_dir))
        try:
            store.migrate()
            return work(store, policy)
        finally:
            store.close()
    except failures as exc:
        print(f"cannot {verb}: {exc}", file=sys.stderr)
        return None


def _export(args: argparse.Namespace) -> int:
    from gateway.dataset import ExportOptions, NoFineTuning, export
    from gateway.dataset.export import DatasetError
    from retrieval import MiniLMEncoder

    options = ExportOptions(route=args.route, out=Path(args.out), since=args.since, until=args.until,
                            min_feedback=args.min_feedback, source=args.source, system_prompt=args.system_prompt,
                            provider=args.provider, base_model=args.base_model, epochs=args.epochs,
                            training_usd_per_million=args.training_price, test_share=args.test_share,
                            validation_share=args.validation_share)
    manifest = _with_store(args, "export", lambda store, policy: export(store, policy, options,
                                                                       MiniLMEncoder(threads=2).embed),
                           (NoFineTuning, DatasetError))
    if manifest is None:
        return 2
    counts, cost = manifest.counts, manifest.estimated_training_cost_usd
    print(f"{args.out}: {counts['train']} train, {counts['validation']} validation, {counts['test']} test "
          f"(of {counts['captured']} captured; {counts['exact_duplicates']} exact and {counts['near_duplicates']} "
          f"near duplicates, {counts['invalid']} invalid left out); {manifest.tokens['train']} training tokens; "
          f"estimated training cost {'unknown' if cost is None else f'${cost:,.2f}'} "
          f"({manifest.epochs} epochs of {manifest.base_model})")
    return 0


def _labels(args: argparse.Namespace) -> int:
    from gateway.dataset.labels import counts, labels_of, write_labels

    embed = None
    if args.grader == "similarity":
        from retrieval import MiniLMEncoder

        embed = MiniLMEncoder(threads=2).embed
    found = _with_store(args, "label", lambda store, policy: labels_of(store, policy, args.route, args.grader,
                                                                       args.threshold, embed), (ValueError,))
    if found is None:
        return 2
    if not found.labels:
        print(f"cannot label: route '{args.route}' has no captures with a fine-tuned shadow answer or feedback yet",
              file=sys.stderr)
        return 1
    path = Path(args.out) / f"{args.route}.csv"
    write_labels(found.labels, path)
    summary = counts(found.labels)
    print(f"{path}: {summary['labels']} labelled prompts ({summary['from_pairs']} from paired answers, "
          f"{summary['from_feedback']} from feedback); the fine-tuned answer would have done on "
          f"{summary['fine_tuned_would_do']}. Train and compare with: hybrid-gateway router train --data {args.out} "
          f"--kind static --out router.npz; hybrid-gateway router eval --data {args.out} --model router.npz "
          f"(and --model fast)")
    return 0


def _store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policies", default=os.environ.get("HYBRID_GATEWAY_POLICIES", str(DEFAULT_POLICIES)))
    parser.add_argument("--data-dir", default=os.environ.get("HYBRID_GATEWAY_DATA_DIR", "var"))
    parser.add_argument("--database-url", default=os.environ.get("HYBRID_GATEWAY_DATABASE_URL") or None)


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dataset = subparsers.add_parser("dataset", help="fine-tuning datasets from captured traffic")
    commands = dataset.add_subparsers(dest="dataset_command", required=True)
    out = commands.add_parser("export", help="a route's captures as train/validation/test JSONL and a manifest")
    out.add_argument("--route", required=True)
    out.add_argument("--out", required=True, help="directory to write the files into")
    out.add_argument("--format", choices=("openai-chat",), default="openai-chat")
    out.add_argument("--since", type=_moment, help="captured at or after (ISO 8601 or epoch seconds)")
    out.add_argument("--until", type=_moment, help="captured before (ISO 8601 or epoch seconds)")
    out.add_argument("--min-feedback", type=float, help="only captures with feedback: a score >= this, or success")
    out.add_argument("--source", choices=("prompted", "fine_tuned", "both"), default="prompted",
                     help="whose answers to learn from (default: the prompted arm's, i.e. distillation)")
    out.add_argument("--system-prompt", choices=("fine_tuned", "none"), default="fine_tuned",
                     help="the system prompt each example carries (default: the fine-tuned arm's)")
    out.add_argument("--provider", help="default: the provider of the route's fine-tuned arm's target")
    out.add_argument("--base-model", help="the model to fine-tune (prices the estimate)")
    out.add_argument("--epochs", type=positive_int, default=3)
    out.add_argument("--training-price", type=positive, help="USD per million training tokens (overrides the table)")
    out.add_argument("--test-share", type=_share, default=0.1)
    out.add_argument("--validation-share", type=_share, default=0.2)
    _store_arguments(out)
    out.set_defaults(command=_export)
    labels = commands.add_parser("labels", help="router training labels from captured paired answers and feedback")
    labels.add_argument("--route", required=True)
    labels.add_argument("--out", required=True, help="directory for <route>.csv (router train|eval --data DIR)")
    labels.add_argument("--grader", choices=("exact", "f1", "similarity"), default="f1",
                        help="how a fine-tuned shadow answer is graded against the prompted one")
    labels.add_argument("--threshold", type=float, default=0.5,
                        help="a grade (or a feedback score, as a share of its scale) at or above this: it would do")
    _store_arguments(labels)
    labels.set_defaults(command=_labels)
