"""Retrieval speed: query embedding, embed+search over 10,000 chunks, ingestion throughput.

Figures (targets): query embedding p50 (<= 10 ms); retrieval p50 = embed +
Chroma search over --chunks synthetic chunks (<= 15 ms), with search alone
shown too; ingestion chunks/s through ingest_paths on a generated Markdown
corpus of realistic section sizes (load + chunk + embed + write). Latencies are
single-threaded calls after a warm-up, measured with perf_counter.

Run: .venv/bin/python bench/retrieval_speed.py [--chunks 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retrieval import Chunk, KnowledgeStore, MiniLMEncoder, ingest_paths

QUESTIONS = Path(__file__).with_name("data") / "retrieval_questions.jsonl"
COMMAND = ".venv/bin/python bench/retrieval_speed.py"
CITIES = [
    "Hamburg",
    "Rotterdam",
    "Antwerp",
    "Lyon",
    "Milan",
    "Warsaw",
    "Prague",
    "Vienna",
    "Madrid",
    "Porto",
    "Austin",
    "Denver",
    "Memphis",
    "Chicago",
]
CARRIERS = [
    "DHL",
    "UPS",
    "FedEx",
    "Schenker",
    "Maersk",
    "Hapag-Lloyd",
    "Kuehne",
    "Dachser",
    "GEODIS",
    "Ryder",
]
TOPICS = [
    "delivery window",
    "customs hold",
    "temperature log",
    "pallet count",
    "proof of delivery",
    "invoice dispute",
    "fuel surcharge",
    "detention fee",
    "booking change",
    "damage claim",
]


class CachingEncoder:
    """Wraps an encoder and remembers vectors, so a second pass over the same queries times search alone."""

    def __init__(self, inner: MiniLMEncoder) -> None:
        self.inner, self.model_id, self.dim = inner, inner.model_id, inner.dim
        self.cache: dict[str, np.ndarray] = {}

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in texts if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.inner.embed(missing), strict=True))
        return np.array([self.cache[t] for t in texts], dtype=np.float32).reshape(len(texts), self.dim)


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"p50={statistics.median(ordered) * 1000:.2f} ms p95={p95 * 1000:.2f} ms (n={len(ordered)})"


def timed(call: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def synthetic_sentence(rng: random.Random) -> str:
    a, b = rng.sample(CITIES, 2)
    return (
        f"Shipment {rng.randint(10000, 99999)} from {a} to {b} with {rng.choice(CARRIERS)}: "
        f"{rng.choice(TOPICS)} noted on day {rng.randint(1, 28)}, {rng.randint(1, 40)} pallets, "
        f"rate {rng.randint(200, 4000)} USD."
    )


def write_corpus(directory: Path, files: int, rng: random.Random) -> None:
    """Markdown docs with headed sections of roughly 120-180 word pieces each."""
    for n in range(files):
        sections = [f"# Lane report {n}"]
        for s in range(12):
            body = " ".join(synthetic_sentence(rng) for _ in range(4))
            sections.append(f"## Section {s}: {rng.choice(TOPICS)}\n\n{body}")
        (directory / f"report-{n:03d}.md").write_text("\n\n".join(sections) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--chunks", type=int, default=10_000, help="synthetic chunks in the search collection"
    )
    parser.add_argument(
        "--files", type=int, default=25, help="generated Markdown files for the ingestion run"
    )
    args = parser.parse_args()
    rng = random.Random(7)
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text().splitlines() if line.strip()]
    encoder = CachingEncoder(MiniLMEncoder())
    inner = encoder.inner
    inner.embed(questions[:5])

    query_samples = [s for q in questions for s in timed(lambda q=q: inner.embed([q]), 4)]
    print(f"query embedding: {percentiles(query_samples)}")

    with tempfile.TemporaryDirectory() as tmp:
        store = KnowledgeStore.embedded(Path(tmp, "chroma"), encoder)
        corpus = Path(tmp, "corpus")
        corpus.mkdir()
        write_corpus(corpus, args.files, rng)
        start = time.perf_counter()
        report = ingest_paths(store, [corpus], "ingest-bench", base_dir=corpus)
        elapsed = time.perf_counter() - start
        print(
            f"ingestion: {report.chunks_added} chunks from {args.files} files in {elapsed:.1f} s = "
            f"{report.chunks_added / elapsed:.1f} chunks/s"
        )
        start = time.perf_counter()
        again = ingest_paths(store, [corpus], "ingest-bench", base_dir=corpus)
        print(
            f"re-ingestion unchanged: {again.chunks_unchanged} chunks kept, {again.chunks_embedded} embedded, "
            f"{time.perf_counter() - start:.2f} s"
        )

        start = time.perf_counter()
        for first in range(0, args.chunks, 500):
            texts = [synthetic_sentence(rng) for _ in range(min(500, args.chunks - first))]
            chunks = [
                Chunk(
                    f"synthetic-{first + i:06d}",
                    f"synthetic/{(first + i) // 50:04d}.md",
                    text,
                    {"source": f"synthetic/{(first + i) // 50:04d}.md", "position": (first + i) % 50},
                )
                for i, text in enumerate(texts)
            ]
            store.upsert("speed-bench", chunks, inner.embed(texts))
        print(f"built {store.count('speed-bench')} synthetic chunks in {time.perf_counter() - start:.1f} s")
        store.query("speed-bench", "warm up", k=4)
        full: list[float] = []
        for q in questions * 4:
            encoder.cache.pop(q, None)  # force the query to be embedded inside the timed call
            full += timed(lambda q=q: store.query("speed-bench", q, k=4), 1)
        search = [s for q in questions for s in timed(lambda q=q: store.query("speed-bench", q, k=4), 4)]
        print(f"retrieval over {args.chunks} chunks (embed + search, k=4): {percentiles(full)}")
        print(f"search only over {args.chunks} chunks (cached query vector): {percentiles(search)}")
    print(f"command: {COMMAND} --chunks {args.chunks} --files {args.files}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
