"""Shipped models by name, and model files of either kind.

Two models ship in `routes/models/`, trained together by `hybrid-gateway router train --shipped`:

* `default` -- EmbeddingClassifier: the linear score plus a MiniLM topic prior. Best quality;
  ~6 ms median, ~8 ms p99 per decision (one short MiniLM call).
* `fast` -- StaticClassifier: the same linear score plus a topic prior from MiniLM's static
  word-piece embeddings (no transformer pass, `routes/_static.py`); p99 under 1 ms per decision.

A plain LinearClassifier file (`router train --kind linear`) still loads.

`load_classifier` takes one of those names, a path to a model file, or None (= `default`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ._embedding import KIND as EMBEDDING_KIND
from ._embedding import Embedder, EmbeddingClassifier, embedding_from_fields, topic_encoder
from ._linear import KIND as LINEAR_KIND
from ._linear import LinearClassifier, ModelFileError, linear_from_fields, read_fields
from ._static import KIND as STATIC_KIND
from ._static import StaticClassifier, static_from_fields

MODELS_DIR = Path(__file__).resolve().parent / "models"
SHIPPED = ("default", "fast")
DEFAULT_MODEL = MODELS_DIR / "default.npz"
FAST_MODEL = MODELS_DIR / "fast.npz"

RoutingModel = LinearClassifier | StaticClassifier | EmbeddingClassifier


def model_path(model: str | Path | None) -> Path:
    """The file behind a shipped name (None = `default`) or a path."""
    if model is None:
        return DEFAULT_MODEL
    if isinstance(model, str) and model in SHIPPED:
        return MODELS_DIR / f"{model}.npz"
    return Path(model).resolve()


def read_model(path: str | Path, embedder: Embedder | None = None) -> RoutingModel:
    """Load a saved model of either kind, refusing files whose features do not match this code.

    An embedding model gets `embedder`, by default the process-wide MiniLM encoder, at once, so
    the ~0.2 s load happens here rather than on the first request.
    """
    fields = read_fields(path)
    kind = str(fields["kind"]) if "kind" in fields else "?"
    if kind == LINEAR_KIND:
        return linear_from_fields(fields, path)
    if kind == STATIC_KIND:
        return static_from_fields(fields, path)
    if kind == EMBEDDING_KIND:
        return embedding_from_fields(fields, path, embedder=embedder or topic_encoder())
    raise ModelFileError(f"{path}: unknown model kind {kind!r}")


def resolve_model(model: str, policies_dir: Path) -> RoutingModel:
    """A policy's ``classifier.model``: a shipped name, else a model file relative to the policy directory."""
    return load_classifier(model if model in SHIPPED else policies_dir / model)


def load_classifier(model: str | Path | None = None) -> RoutingModel:
    """`default`, `fast`, a model file, or None (= `default`); each file is loaded once per process."""
    return _load_cached(str(model_path(model)))


@lru_cache(maxsize=8)
def _load_cached(resolved: str) -> RoutingModel:
    return read_model(resolved)
