"""Retrieval quality on the demo corpus: recall@k over a labelled question set.

Each question in data/retrieval_questions.jsonl is phrased unlike the text
that answers it and names its answer by source file and a substring of the
answering passage, so labels survive changes to chunking. A question counts
as recalled when a top-k hit comes from that source and contains the
substring. Target: recall@3 >= 0.9.

Run: .venv/bin/python bench/retrieval_quality.py [--k 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retrieval import KnowledgeStore, ensure_demo_corpus

QUESTIONS = Path(__file__).with_name("data") / "retrieval_questions.jsonl"
COMMAND = ".venv/bin/python bench/retrieval_quality.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=3)
    args = parser.parse_args()
    questions = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        store = KnowledgeStore.embedded(tmp)
        ensure_demo_corpus(store, "quality")
        chunks = store.chunks("quality")
        for q in questions:  # a label that matches no passage would silently count as a miss
            if not any(c.source == q["source"] and q["answer_contains"] in c.text for c in chunks):
                raise SystemExit(f"bad label, no passage of {q['source']} contains {q['answer_contains']!r}")
        ranks: list[int | None] = []
        correct_scores: list[float] = []
        started = time.perf_counter()
        for q in questions:
            hits = store.query("quality", q["question"], k=args.k)
            rank = next(
                (
                    i
                    for i, h in enumerate(hits, 1)
                    if h.source == q["source"] and q["answer_contains"] in h.text
                ),
                None,
            )
            ranks.append(rank)
            if rank is None:
                top = hits[0] if hits else None
                print(
                    f"MISS  {q['question']!r} -> top: {top.source if top else '-'} {top.score if top else 0:.3f}"
                )
            else:
                correct_scores.append(hits[rank - 1].score)
        elapsed = time.perf_counter() - started
    n = len(questions)
    recall_1 = sum(r == 1 for r in ranks) / n
    recall_k = sum(r is not None for r in ranks) / n
    mrr = sum(1 / r for r in ranks if r) / n
    print(f"questions={n} chunks={len(chunks)} k={args.k}")
    print(f"recall@1={recall_1:.3f} recall@{args.k}={recall_k:.3f} MRR@{args.k}={mrr:.3f}")
    print(
        f"score of the answering hit: min={min(correct_scores):.3f} median={sorted(correct_scores)[len(correct_scores) // 2]:.3f}"
    )
    print(f"{elapsed / n * 1000:.1f} ms per question (embed + search)")
    print(f"command: {COMMAND} --k {args.k}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
