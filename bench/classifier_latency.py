"""Per-decision latency of the shipped classifiers over real prompts (median and p99).

A decision is `routes.decide` on one chat: message parsing, feature extraction, the sparse dot
product (its explanation is worked out only when asked, so not here), plus the topic prior -- for
`fast`, a tokenizer call and a mean of static word-piece vectors (routes/_static.py; both by the
compiled scorer routes/_scorer.c when it is built); for `default`, one MiniLM call on the prompt's
first word pieces. Targets: `fast` p99 <= 1 ms, `default` p99 <= 10 ms. Prompts come from the routing data's test split (MMLU, GSM8K,
MT-Bench), scored in a shuffled order, after one warm-up pass so imports and first calls are not
counted; pass --cold to include that first pass. Run from the repo root:

    .venv/bin/python bench/classifier_latency.py [--model fast --model default] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from routes import decide, load_classifier, prompt_messages
from routes.training.data import load_examples

DATASETS = ("mmlu", "gsm8k", "mt_bench")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data/routing"))
    parser.add_argument(
        "--model",
        action="append",
        help="shipped model name or model file, repeatable (default: fast and default)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed passes over the prompts")
    parser.add_argument("--cold", action="store_true", help="time the first pass too (empty token cache)")
    args = parser.parse_args()

    prompts = [e.prompt for name in DATASETS for e in load_examples(args.data_root / name, "test")]
    random.Random(0).shuffle(prompts)
    chats = [prompt_messages(p) for p in prompts]
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    for model in args.model or ["fast", "default"]:
        micros = _time(model, chats, args.repeat, args.cold)
        print(
            f"{model}: {micros.size} decisions ({len(prompts)} prompts x {args.repeat}, "
            f"{'cold' if args.cold else 'warm'} start)  median: {np.median(micros):.0f} us   "
            f"p99: {np.percentile(micros, 99):.0f} us   max: {micros.max():.0f} us"
        )
    return 0


def _time(model: str, chats: list[list[dict[str, str]]], repeat: int, cold: bool) -> np.ndarray:
    classifier = load_classifier(model)
    threshold = classifier.threshold_for_share(0.3)
    if not cold:
        for chat in chats:
            decide(classifier, chat, threshold)
    timings = []
    clock = time.perf_counter_ns
    for _ in range(repeat):
        for chat in chats:
            start = clock()
            decide(classifier, chat, threshold)
            timings.append(clock() - start)
    return np.asarray(timings) / 1000.0


if __name__ == "__main__":
    raise SystemExit(main())
