"""The names every part of the evaluation shares; a leaf module, so the option parser stays light."""

QUALITY = ("exact_match", "f1", "similarity", "json_valid")
"""The quality metrics of :mod:`gateway.evaluation.scoring`; any of them can be the primary one."""
DEFAULT_TOLERANCE = 0.02
"""Accuracy a cheaper option may lose and still count as "as good as prompting"."""
STRATEGY = "strategy"
"""The journal's third "arm": the route called without forcing an arm, so its strategy (cascade, ensemble) runs."""
