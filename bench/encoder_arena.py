"""What turning off onnxruntime's CPU memory arena costs the MiniLM encoder in CPU, per call shape.

Two sessions of the shipped int8 MiniLM, identical but for ``enable_cpu_mem_arena``, run the
same inputs in alternating rounds in one process; thread CPU time per call (less sensitive
than wall time to the other work on a shared machine), median of the rounds. The shapes are
the serving ones (the topic prior's 12 pieces, a question, a long retrieval query) and an
ingestion batch. docs/BENCHMARKS.md, "Memory per worker", explains why the arena is off.

    .venv/bin/python bench/encoder_arena.py [--rounds 9]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort

from retrieval.embeddings.minilm import default_model_path

SHAPES = ((1, 12, 200), (1, 40, 100), (1, 256, 20), (32, 128, 3))  # texts, pieces, calls per round


def session(arena: bool) -> ort.InferenceSession:
    """The options of ``load_model``, with the arena on or off."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = arena
    options.log_severity_level = 3
    return ort.InferenceSession(str(default_model_path()), sess_options=options, providers=["CPUExecutionProvider"])


def feeds(texts: int, pieces: int) -> dict[str, np.ndarray]:
    ids = np.full((texts, pieces), 2000, dtype=np.int64)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    sessions = {True: session(True), False: session(False)}
    print("| call | with arena ms CPU | without ms CPU | change |")
    print("|---|---|---|---|")
    for texts, pieces, calls in SHAPES:
        inputs = feeds(texts, pieces)
        times: dict[bool, list[float]] = {True: [], False: []}
        for arena in (True, False):
            sessions[arena].run(None, inputs)  # warm
        for round_ in range(args.rounds):
            for arena in (True, False) if round_ % 2 == 0 else (False, True):
                began = time.thread_time()
                for _ in range(calls):
                    sessions[arena].run(None, inputs)
                times[arena].append((time.thread_time() - began) / calls * 1000)
        with_arena, without = statistics.median(times[True]), statistics.median(times[False])
        print(f"| {texts} x {pieces} pieces | {with_arena:.2f} | {without:.2f} "
              f"| {100 * (without - with_arena) / with_arena:+.1f}% |")


if __name__ == "__main__":
    main()
