"""Complexity classifier: how much a chat needs the strong (prompted) arm rather than the fine-tune.

The gateway uses only what `__all__` lists. Typical use::

    clf = load_classifier()                      # shipped default model, cached
    threshold = clf.threshold_for_share(0.3)     # ~30% of traffic to the prompted arm
    decision = decide(clf, messages, threshold)  # Decision(arm="prompted" | "fine_tuned", ...)

The default model is a logistic regression over named cues and hashed n-grams, trained on
RouteLLM's public GPT-4 vs Mixtral labels (see `routes/_train.py`); rebuild it with
`hybrid-gateway router train --out routes/models/default.npz`.
"""

from ._cli import add_cli
from ._decision import Decision, decide
from ._linear import LinearClassifier, load_classifier
from ._types import Classifier, Score

__all__ = [
    "Classifier",
    "Decision",
    "LinearClassifier",
    "Score",
    "add_cli",
    "decide",
    "load_classifier",
]
