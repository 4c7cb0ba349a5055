"""Everything only training needs: the data, the fit, the evaluation and the ``router`` subcommands.

- ``data``: RouteLLM's labelled prompts, split as the shipped models were trained;
- ``config``: the hyper-parameters, importable without the ``[train]`` extra;
- ``train``: the linear score and its topic prior fitted (``logistic``: scipy's L-BFGS-B on soft targets;
  ``onnx``: MiniLM's word-piece table read from the ONNX file);
- ``evaluate``, ``quality`` (APGR, CPT: how well a router routes), ``crossval``: how a model routes a held-out
  set, and the cross-validated choices;
- ``cli``: ``hybrid-gateway router train|eval|cv|score``.

The serving side (``routes``) never imports this package, so serving needs none of it; ``train`` and
``crossval`` need the ``[train]`` extra (onnx, scipy), the rest does not.
"""

from routes.training.cli import add_cli

__all__ = ["add_cli"]
