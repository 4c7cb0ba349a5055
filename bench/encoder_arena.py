"""What each memory change to the MiniLM encoder costs in CPU, per call shape.

A change is two configurations, "before" and "after", run on the same inputs in alternating
rounds in one process; thread CPU time per call (less sensitive than wall time to the other work
on a shared machine), median of the rounds. The shapes are the serving ones (the topic prior's
12 pieces, a question, a long retrieval query) and an ingestion batch. docs/BENCHMARKS.md,
"Memory per worker", explains each change:

- ``arena``: onnxruntime's CPU memory arena on (before) and off (after, ``load_model``'s).
- ``int8-gather``: the model file as shipped (before, its word table folded to float32) and
  rewritten to gather int8 rows (after, ``retrieval.embeddings.int8_gather``).
- ``heap-thresholds``: glibc's mmap threshold at 32 MiB (before: where its dynamic threshold
  climbs after freeing large blocks) and pinned at 128 KiB (after, ``keep_heap_thresholds``),
  switched with mallopt before each round on one session.

    .venv/bin/python bench/encoder_arena.py [--change arena] [--rounds 9]
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort

from retrieval.embeddings.int8_gather import gather_before_dequantise
from retrieval.embeddings.minilm import HEAP_THRESHOLD, default_model_path, keep_heap_thresholds

SHAPES = ((1, 12, 200), (1, 40, 100), (1, 256, 20), (32, 128, 3))  # texts, pieces, calls per round
_M_MMAP_THRESHOLD = -3
#: A configuration: the session to time, and what to do before each of its rounds.
Setup = tuple[ort.InferenceSession, Callable[[], None]]


def session(*, arena: bool = False, rewritten: bool = True) -> ort.InferenceSession:
    """The options of ``load_model``, with the arena and the int8-gather rewrite as asked."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = arena
    options.log_severity_level = 3
    model = default_model_path().read_bytes()
    if rewritten:
        model, _ = gather_before_dequantise(model)
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def mmap_threshold(size: int) -> Callable[[], None]:
    return lambda: ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, size)


def configurations(change: str) -> dict[str, Setup]:
    """``before`` and ``after`` of one change; everything else as ``load_model`` has it."""
    keep_heap_thresholds()
    pinned = mmap_threshold(HEAP_THRESHOLD)
    if change == "arena":
        return {"before": (session(arena=True), pinned), "after": (session(), pinned)}
    if change == "int8-gather":
        return {"before": (session(rewritten=False), pinned), "after": (session(), pinned)}
    shared = session()
    return {"before": (shared, mmap_threshold(32 << 20)), "after": (shared, pinned)}


def feeds(texts: int, pieces: int) -> dict[str, np.ndarray]:
    ids = np.full((texts, pieces), 2000, dtype=np.int64)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--change", choices=("arena", "int8-gather", "heap-thresholds"), default="arena")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    setups = configurations(args.change)
    print(f"{args.change}:")
    print("| call | before ms CPU | after ms CPU | change |")
    print("|---|---|---|---|")
    for texts, pieces, calls in SHAPES:
        inputs = feeds(texts, pieces)
        times: dict[str, list[float]] = {"before": [], "after": []}
        for name in times:  # warm
            setups[name][1]()
            setups[name][0].run(None, inputs)
        for round_ in range(args.rounds):
            for name in ("before", "after") if round_ % 2 == 0 else ("after", "before"):
                run, prepare = setups[name]
                prepare()
                began = time.thread_time()
                for _ in range(calls):
                    run.run(None, inputs)
                times[name].append((time.thread_time() - began) / calls * 1000)
        before, after = statistics.median(times["before"]), statistics.median(times["after"])
        print(f"| {texts} x {pieces} pieces | {before:.2f} | {after:.2f} | {100 * (after - before) / before:+.1f}% |")


if __name__ == "__main__":
    main()
