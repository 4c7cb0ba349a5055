"""The fine-tuning dataset a route's captures make (the decision guide's Phase 2), and its checks.

- ``examples``: captures to training examples (distillation: the fine-tuned arm's short system prompt,
  the chosen arm's answer), filtered by source and feedback;
- ``dedupe``: exact and near-duplicate removal with the project's MiniLM encoder;
- ``split``: train / validation (80/20) and a separate test set, deterministic by hash, stratified by score band;
- ``providers``: each provider's format rules and training prices (none for a provider without public
  fine-tuning);
- ``export``: all of it as ``train.jsonl``, ``validation.jsonl``, ``test.jsonl`` and ``manifest.json``.
"""

from gateway.dataset.export import ExportOptions, Manifest, export
from gateway.dataset.providers import NoFineTuning, rules_for

__all__ = ["ExportOptions", "Manifest", "NoFineTuning", "export", "rules_for"]
