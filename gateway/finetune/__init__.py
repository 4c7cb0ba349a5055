"""The fine-tuning job of an exported dataset, through the official ``openai`` SDK (the guide's Phase 3).

- ``jobs``: upload ``train.jsonl`` and ``validation.jsonl``, start the job, read its progress (status,
  training and validation loss from its events and checkpoints), cancel it;
- ``candidate``: the policy target of the resulting ``ft:`` model, and the route changes that start its
  shadow test (the guide's Step 18) and put the dataset's real cost into the break-even.
"""

from gateway.finetune.candidate import Candidate, candidate_for
from gateway.finetune.jobs import Progress, Submitted, cancel, progress, submit

__all__ = ["Candidate", "Progress", "Submitted", "cancel", "candidate_for", "progress", "submit"]
