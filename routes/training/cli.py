"""`router` subcommands (train, cv, eval, score) for the project's `hybrid-gateway` CLI.

`router score --route NAME` applies a route's decision rule exactly as the gateway does (its model,
low_confidence arm and threshold: the fixed one, or for strong_share the warm start, or with
`--url` the gateway's live one); every `router score` says on stderr which threshold it used.

Rebuild the two shipped models (`routes/models/fast.npz`, `routes/models/default.npz`) from the
train split with one command, run from the repository root beside `../shared`:

    hybrid-gateway router train --shipped

`add_cli` only registers parsers; each subcommand stores its handler as `command`, which takes the
parsed namespace and returns an exit code. Heavy work is imported at call time so building the
parser stays cheap.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from policies import ARM_NAMES, DEFAULT_POLICIES

from .._calibration import CalibrationWindow, Cut, ScoreSketch
from .._decision import DEFAULT_THRESHOLD, decide
from .._linear import ModelFileError
from .._messages import prompt_messages
from .._models import MODELS_DIR, SHIPPED, RoutingModel, load_classifier, resolve_model
from .config import TrainConfig
from .data import DataError, Example, load_examples

DEFAULT_DATA_ROOT = Path("../shared/data/routing")
TRAIN_DATASETS = ("mmlu", "gsm8k", "mt_bench")
EVAL_DATASETS = ("mmlu", "gsm8k", "mt_bench")
_MODEL_HELP = "shipped model name (default, fast) or a model file (default: default)"
API_KEY_ENV = "HYBRID_GATEWAY_API_KEY"
TRAIN_EXTRA = ("onnx", "scipy")


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `router train|cv|eval|score` on an argparse subparsers object."""
    router = subparsers.add_parser("router", help="train, evaluate and run the complexity classifier")
    commands = router.add_subparsers(dest="router_command", required=True)

    train = commands.add_parser("train", help="train a classifier on the train split of dataset folders")
    _data_arguments(train, TRAIN_DATASETS)
    where = train.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="where to write the model (.npz)")
    where.add_argument(
        "--shipped",
        action="store_true",
        help=f"train both shipped models and write {', '.join(f'{n}.npz' for n in SHIPPED)} into routes/models/",
    )
    train.add_argument(
        "--kind",
        choices=("linear", "static", "embedding"),
        default="linear",
        help="with --out: linear (no topic prior), static (the `fast` model) or embedding "
        "(the `default` model); default %(default)s",
    )
    train.add_argument("--l2", type=float, default=TrainConfig.l2, help="L2 penalty (default %(default)s)")
    train.add_argument("--bits", type=int, default=TrainConfig.bits, help="log2 of hashed feature buckets")
    train.set_defaults(command=_cmd_train)

    cv = commands.add_parser(
        "cv", help="cross-validate both models on the train split (how model choices are made)"
    )
    _data_arguments(cv, TRAIN_DATASETS)
    cv.add_argument("--folds", type=int, default=5, help="default %(default)s")
    cv.add_argument("--seed", type=int, default=0, help="fold assignment seed (default %(default)s)")
    cv.add_argument("--json", action="store_true", help="print JSON instead of a table")
    cv.set_defaults(command=_cmd_cv)

    evaluate = commands.add_parser("eval", help="APGR, CPT and ROC AUC beside random and length baselines")
    _data_arguments(evaluate, EVAL_DATASETS)
    evaluate.add_argument("--model", help=_MODEL_HELP)
    evaluate.add_argument("--split", choices=("test", "train"), default="test", help="default %(default)s")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    evaluate.set_defaults(command=_cmd_eval)

    score = commands.add_parser(
        "score", help="score JSON lines from stdin ({'prompt': ...} or {'messages': [...]}) with a route's "
        "decision rule (--route) or a bare threshold; says on stderr which threshold it used"
    )
    score.add_argument("--model", help=_MODEL_HELP + "; with --route, the route's")
    level = score.add_mutually_exclusive_group()
    level.add_argument("--route", help="apply exactly this route's rule: its model, low_confidence arm and "
                       "threshold (fixed, or calibrated: the warm start, or the live one with --url)")
    level.add_argument("--threshold", type=float, help="prompted when score >= this (default 0.5)")
    level.add_argument(
        "--strong-share", type=float, help="the threshold that sends this share of the training mix to prompted"
    )
    score.add_argument("--policies", type=Path, default=DEFAULT_POLICIES,
                       help="policy directory for --route (default: the shipped one)")
    score.add_argument("--url", help="with --route: read the live threshold from this gateway's GET /v1/routes")
    score.add_argument("--api-key", default=os.environ.get(API_KEY_ENV), metavar="KEY",
                       help=f"client API key for --url, when the gateway requires one (default ${API_KEY_ENV})")
    score.add_argument(
        "--low-confidence-arm", choices=ARM_NAMES, help="arm for unjudgeable input (default prompted; with --route, "
        "the route's)"
    )
    score.set_defaults(command=_cmd_score)


def _data_arguments(parser: argparse.ArgumentParser, defaults: tuple[str, ...]) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        action="append",
        help=f"dataset folder, repeatable (default: {', '.join(defaults)} under --data-root)",
    )
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT, help="default %(default)s")
    parser.set_defaults(default_datasets=defaults)


def _folders(args: argparse.Namespace) -> list[Path]:
    return list(args.data) if args.data else [args.data_root / name for name in args.default_datasets]


def _without_train_extra(command: str) -> bool:
    """Whether the `[train]` extra is missing, said in one line instead of an ImportError's traceback.

    The serving install (`pip install .`, the container image) leaves it out; `eval` and `score` need none of it.
    """
    missing = [name for name in TRAIN_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        print(f"router {command}: training needs {' and '.join(missing)}, not in this install: "
              "pip install 'hybrid-gateway[train]'", file=sys.stderr)
    return bool(missing)


def _cmd_train(args: argparse.Namespace) -> int:
    if _without_train_extra("train"):
        return 2
    from .train import train, train_embedding, train_pair, train_static

    try:
        datasets = [load_examples(folder, "train") for folder in _folders(args)]
    except DataError as exc:
        print(f"router train: {exc}", file=sys.stderr)
        return 2
    config = TrainConfig(bits=args.bits, l2=args.l2)
    if args.shipped:
        fast, default = train_pair(datasets, config)
        fast.save(MODELS_DIR / "fast.npz")
        default.save(MODELS_DIR / "default.npz")
        written = f"{MODELS_DIR / 'fast.npz'} and {MODELS_DIR / 'default.npz'}"
    else:
        trainers: dict[str, Callable[[Sequence[Sequence[Example]], TrainConfig], RoutingModel]] = {
            "static": train_static, "embedding": train_embedding, "linear": train,
        }
        trainers[args.kind](datasets, config).save(args.out)
        written = str(args.out)
    sizes = ", ".join(
        f"{folder.name}={len(rows)}" for folder, rows in zip(_folders(args), datasets, strict=True)
    )
    print(f"trained on {sizes} train rows; wrote {written}")
    return 0


def _cmd_cv(args: argparse.Namespace) -> int:
    if _without_train_extra("cv"):
        return 2
    from .crossval import as_json, cross_validate, format_table

    try:
        datasets = {folder.name: load_examples(folder, "train") for folder in _folders(args)}
    except DataError as exc:
        print(f"router cv: {exc}", file=sys.stderr)
        return 2
    report = cross_validate(datasets, TrainConfig(), folds=args.folds, seed=args.seed)
    print(json.dumps(as_json(report), indent=2) if args.json else format_table(report))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import as_json, evaluate, format_table

    try:
        datasets = [(folder.name, load_examples(folder, args.split)) for folder in _folders(args)]
        classifier = load_classifier(args.model)
        reports = [evaluate(classifier, rows, name) for name, rows in datasets]
    except (DataError, ModelFileError) as exc:
        print(f"router eval: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(as_json(reports), indent=2))
    else:
        print(format_table(reports))
    return 0


def _cmd_score(args: argparse.Namespace, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    source, sink = stdin or sys.stdin, stdout or sys.stdout
    try:
        rule = _route_rule(args) if args.route else _bare_rule(args)
    except (ModelFileError, ValueError, OSError) as exc:
        print(f"router score: {exc}", file=sys.stderr)
        return 2
    print(f"router score: {rule.said}", file=sys.stderr)
    for line in source:
        try:
            decision = decide(rule.classifier, _request_messages(line), rule.threshold, rule.low_confidence)
            result: dict[str, Any] = {"score": _json_score(decision.score), "arm": decision.arm}
        except ValueError as exc:
            result = {"error": str(exc)}
        sink.write(json.dumps(result) + "\n")
        sink.flush()
    return 0


@dataclass(frozen=True)
class _Rule:
    """What `router score` decides with, and the sentence that says where its threshold came from."""

    classifier: RoutingModel
    threshold: float | Cut
    low_confidence: str
    said: str


def _bare_rule(args: argparse.Namespace) -> _Rule:
    if args.url:
        raise ValueError("--url reads a route's live threshold: give --route NAME")
    classifier = load_classifier(args.model)
    low = args.low_confidence_arm or "prompted"
    if args.strong_share is not None:
        threshold = classifier.threshold_for_share(args.strong_share)
        return _Rule(classifier, threshold, low, f"threshold {threshold:.4f}: --strong-share {args.strong_share} "
                     "on the model's training quantiles (a route's own traffic may need another: --route NAME)")
    if args.threshold is not None:
        return _Rule(classifier, args.threshold, low, f"threshold {args.threshold:.4f} (--threshold)")
    return _Rule(classifier, DEFAULT_THRESHOLD, low, f"threshold {DEFAULT_THRESHOLD} (the default; --route NAME "
                 "applies a route's own rule)")


def _route_rule(args: argparse.Namespace) -> _Rule:
    """The route's rule exactly as the gateway applies it (see gateway/pipeline/arm_choice.py)."""
    from policies import PolicyLoadError, load_policies

    try:
        policy = load_policies(args.policies)
    except PolicyLoadError as exc:
        raise ValueError("\n".join(str(issue) for issue in exc.issues)) from exc
    route = policy.routes.get(args.route)
    if route is None or route.classifier is None:
        known = ", ".join(sorted(name for name, r in policy.routes.items() if r.classifier)) or "none"
        reason = "no such route" if route is None else "the route has no classifier"
        raise ValueError(f"{args.route!r}: {reason} in {args.policies} (routes with a classifier: {known})")
    config = route.classifier
    if args.model or args.low_confidence_arm:
        raise ValueError("--route applies the route's own model and low_confidence arm: drop --model and "
                         "--low-confidence-arm")
    classifier = resolve_model(config.model, args.policies)
    low = config.low_confidence
    live = config.live
    if live is None or config.strong_share is None:
        if args.url:
            raise ValueError(f"route {args.route!r} has a fixed threshold: --url has no live one to read")
        threshold = config.threshold if config.threshold is not None else DEFAULT_THRESHOLD
        return _Rule(classifier, threshold, low, f"threshold {threshold:.4f}: the fixed threshold of route {args.route!r}")
    if args.url:
        return _live_rule(args, classifier, low)
    window = CalibrationWindow(live.window_decisions, live.window_s, live.prior_weight)
    cut = ScoreSketch(classifier.calibration, window).cut(config.strong_share)
    return _Rule(classifier, cut, low, f"threshold {cut.threshold:.4f}: the warm start of route {args.route!r} "
                 f"(strong_share {config.strong_share} on the model's training quantiles); the gateway "
                 "calibrates it live on the route's own traffic: see GET /v1/routes, or pass --url URL to use it")


def _live_rule(args: argparse.Namespace, classifier: RoutingModel, low: str) -> _Rule:
    """The route's live cut from a running gateway's GET /v1/routes."""
    url = args.url.rstrip("/") + "/v1/routes"
    request = urllib.request.Request(url, headers={"authorization": f"Bearer {args.api_key}"} if args.api_key else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        hint = f": give --api-key or set ${API_KEY_ENV}" if exc.code == 401 else ""
        raise ValueError(f"{url}: HTTP {exc.code}{hint}") from exc
    except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{url}: {exc}") from exc
    views = {entry.get("route"): entry.get("classifier") for entry in body.get("routes", [])}
    view = views.get(args.route)
    if not view or "cut" not in view:
        raise ValueError(f"{url} has no live threshold for route {args.route!r}")
    cut = Cut(float(view["threshold"]), int(view["cut"]["bin"]), float(view["cut"]["fraction"]))
    return _Rule(classifier, cut, low, f"threshold {cut.threshold:.4f}: the live threshold of route {args.route!r} "
                 f"from {url} ({view['decisions']} decisions in its window, {body.get('scope')} scope)")


def _json_score(value: float | None) -> float | None:
    """JSON value for a decision's score (None stays null: the request could not be judged)."""
    return None if value is None else round(value, 6)


def _request_messages(line: str) -> Sequence[Mapping[str, Any]]:
    """One stdin line -> chat messages; raises ValueError with a short reason when malformed."""
    try:
        request = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg}") from exc
    if not isinstance(request, dict):
        raise ValueError("expected a JSON object")
    if isinstance(request.get("prompt"), str):
        return prompt_messages(request["prompt"])
    messages = request.get("messages")
    if isinstance(messages, list) and all(isinstance(m, dict) for m in messages):
        return messages
    raise ValueError("expected 'prompt' (string) or 'messages' (list of objects)")
