"""The training hyper-parameters, apart from the training code so the CLI can show their defaults.

`router train|cv` build their parsers from these defaults in every install; the code that fits
(`train.py`, which needs the `[train]` extra) is imported only when a command runs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; the defaults were chosen by 5-fold cross-validation on the train split."""

    bits: int = 18
    l2: float = 2e-3
    max_iter: int = 300
    calibration_folds: int = 5
    seed: int = 0
    # Topic prior of the embedding model (routes/_embedding.py): 256 clusters, the 5 nearest
    # weighted by exp(20 * cosine), labels shrunk by 5 pseudo-rows; CV against 1024 clusters and
    # a single nearest cluster (MMLU 0.687-0.688 vs 0.678-0.681 with whole-prompt embeddings).
    clusters: int = 256
    topic_top: int = 5
    topic_temperature: float = 20.0
    topic_prior: float = 5.0
    kmeans_iter: int = 20
    stack_l2: float = 1e-4
