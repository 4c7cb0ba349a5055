"""Load labelled routing data (RouteLLM's published per-prompt outcomes) and split it.

Every dataset becomes a list of `Example`: a prompt plus the quality each arm reached on it, in
[0, 1]. Binary correctness (MMLU, GSM8K) and judge scores (MT-Bench) share one shape, so the
trainer and the metrics need not know where a row came from. Contaminated prompts are dropped
and the fixed hash split is applied here, once, so no caller can train on test rows by accident.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

WEAK_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG_MODEL = "gpt-4-1106-preview"
CONTAMINATED_FILE = "contaminated_prompts.jsonl"
MT_BENCH_FILE = "judgements.jsonl"

Split = Literal["train", "test", "all"]


class DataError(ValueError):
    """A dataset folder is missing or does not have the expected layout."""


@dataclass(frozen=True, slots=True)
class Example:
    """One prompt and how well each arm answered it (1 = fully right, 0 = wrong)."""

    prompt: str
    weak: float
    strong: float


def is_test_prompt(prompt: str) -> bool:
    """The project's fixed split: a fifth of prompts, chosen by hash, are test forever."""
    return int(hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:8], 16) % 5 == 0


def load_examples(folder: str | Path, split: Split = "all") -> list[Example]:
    """Read a dataset folder (CSV files or an MT-Bench judgements file), decontaminated and split."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    if (root / MT_BENCH_FILE).is_file():
        rows = _read_mt_bench(root / MT_BENCH_FILE)
    else:
        csv_files = sorted(root.glob("*.csv"))
        if not csv_files:
            raise DataError(f"{root}: no *.csv files and no {MT_BENCH_FILE}")
        rows = [row for path in csv_files for row in _read_csv(path)]
    dropped = _contaminated(root / CONTAMINATED_FILE)
    kept = [row for row in rows if row.prompt not in dropped]
    if split == "all":
        return kept
    want_test = split == "test"
    return [row for row in kept if is_test_prompt(row.prompt) == want_test]


def _contaminated(path: Path) -> frozenset[str]:
    if not path.is_file():
        return frozenset()
    with path.open(encoding="utf-8") as handle:
        return frozenset(json.loads(line)["eval_prompt"] for line in handle if line.strip())


def _parse_bool(value: str, where: str) -> float:
    text = value.strip().lower()
    if text in ("true", "1", "1.0"):
        return 1.0
    if text in ("false", "0", "0.0"):
        return 0.0
    raise DataError(f"{where}: expected True/False, got {value!r}")


def _read_csv(path: Path) -> list[Example]:
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"prompt", WEAK_MODEL, STRONG_MODEL} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path}: missing columns {sorted(missing)}")
        return [
            Example(
                prompt=row["prompt"],
                weak=_parse_bool(row[WEAK_MODEL], f"{path}:{line}"),
                strong=_parse_bool(row[STRONG_MODEL], f"{path}:{line}"),
            )
            for line, row in enumerate(reader, start=2)
        ]


def _read_mt_bench(path: Path) -> list[Example]:
    """MT-Bench: route on the first user turn, quality = mean judge score of both turns, in [0, 1].

    RouteLLM routes MT-Bench on turn one only and scores the whole two-turn conversation, so the
    label is the average of the two turns' 1-10 scores, rescaled so 1 -> 0 and 10 -> 1.
    """
    scores: dict[tuple[int, str], list[float]] = defaultdict(list)
    first_turn: dict[int, str] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            record = json.loads(line)
            qid, model, score = record["question_id"], record["model"], float(record["score"])
            if score < 0:  # the judge failed to produce a rating
                continue
            scores[(qid, model)].append((score - 1.0) / 9.0)
            if record["turn"] == 1:
                first_turn.setdefault(qid, _mt_bench_question(record["user_prompt"]))
    examples = []
    for qid in sorted(first_turn):
        weak, strong = scores.get((qid, WEAK_MODEL)), scores.get((qid, STRONG_MODEL))
        if weak and strong:
            examples.append(Example(first_turn[qid], sum(weak) / len(weak), sum(strong) / len(strong)))
    return examples


def _mt_bench_question(judge_prompt: str) -> str:
    """The user's question sits between '[Question]' and the next bracketed section."""
    _, found, rest = judge_prompt.partition("[Question]\n")
    if not found:
        raise DataError("MT-Bench judgement without a [Question] section")
    return rest.split("\n\n[The Start of", 1)[0].strip()
