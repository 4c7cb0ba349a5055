"""The simulated models of the demo upstream: prices and latency shaped like real ones."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SimulatedModel:
    id: str
    role: str
    ttft_s: float
    per_token_s: float
    answer_tokens: tuple[int, int]
    input_per_million: float
    output_per_million: float
    hedges: bool = False  # answers "not sure" beyond its training (answers.beyond_training)


# Shaped after gpt-4o and a fine-tuned gpt-4o-mini: the large model is slower, wordier and ~8x dearer.
MODELS: dict[str, SimulatedModel] = {m.id: m for m in (
    SimulatedModel("demo-large", "prompted large model", 0.35, 0.012, (60, 140), 2.50, 10.00),
    SimulatedModel("ft:demo-small:hybrid-gateway:support:v1", "fine-tuned small model", 0.12, 0.004, (25, 60),
                   0.30, 1.20),
    # An earlier fine-tune, trained on the desk's frequent questions only: it hedges on long or reasoning
    # questions, so labels from its shadow answers have something to teach a router (docs/capture.md).
    SimulatedModel("ft:demo-small:hybrid-gateway:support:v0", "early fine-tuned small model", 0.12, 0.004,
                   (25, 60), 0.30, 1.20, hedges=True),
)}
EMBEDDING_MODEL = "demo-embed"
EMBEDDING_DIM = 64
