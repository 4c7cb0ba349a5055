"""Complexity classifier: how much a chat needs the strong (prompted) arm rather than the fine-tune.

The gateway uses only what `__all__` lists. Training, evaluation and the `router` subcommands live in
`routes.training`, which serving never imports. Typical use::

    clf = load_classifier()                      # shipped `default` model, cached ("fast": the linear one)
    threshold = clf.threshold_for_share(0.3)     # ~30% of traffic *like the training mix* to the prompted arm
    decision = decide(clf, messages, threshold)  # Decision(arm="prompted" | "fine_tuned", ...)

A route's own traffic scores elsewhere, so the gateway holds a share with a live `ScoreSketch`
of its recent scores instead: `decide(clf, messages, sketch.cut(0.3))`, then
`sketch.record(score, prompted)` (see `routes/_calibration.py`).

Two models ship, trained on RouteLLM's public GPT-4 vs Mixtral labels (see `routes/training/train.py`):
`fast`, a logistic regression over named cues and hashed n-grams stacked with a topic prior from
MiniLM's static word-piece embeddings (no transformer pass, < 1 ms per decision, scored by the
optional compiled scorer `routes/_scorer.c` when it is built; see `routes/_static.py` and
`routes/_compiled.py`), and `default`, the same linear score stacked with a MiniLM topic prior
(< 10 ms per decision; see `routes/_embedding.py`). Rebuild both with `hybrid-gateway router train --shipped`; the
cross-validated figures behind every choice come from `hybrid-gateway router cv`.
"""

from ._calibration import BINS as CALIBRATION_BINS
from ._calibration import CalibrationWindow, Cut, ScoreSketch, Slice, WindowStats
from ._decision import DEFAULT_THRESHOLD, Decision, decide
from ._embedding import EmbeddingClassifier
from ._linear import LinearClassifier
from ._messages import prompt_messages
from ._models import SHIPPED as SHIPPED_MODELS
from ._models import RoutingModel, load_classifier, resolve_model
from ._static import StaticClassifier
from ._types import ChatScorer, Score

__all__ = [
    "CALIBRATION_BINS",
    "DEFAULT_THRESHOLD",
    "SHIPPED_MODELS",
    "CalibrationWindow",
    "ChatScorer",
    "Cut",
    "Decision",
    "EmbeddingClassifier",
    "LinearClassifier",
    "RoutingModel",
    "Score",
    "ScoreSketch",
    "Slice",
    "StaticClassifier",
    "WindowStats",
    "decide",
    "load_classifier",
    "prompt_messages",
    "resolve_model",
]
