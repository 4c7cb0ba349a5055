"""The policy change a finished fine-tune suggests: a target for the ``ft:`` model, shadowed on its route.

The guide's Step 18 compares the new model with the current one on real traffic before anyone switches:
the candidate target is written as its own policy file (the running gateway hot-reloads it), and the
route gets a ``shadow:`` share to that target, plus, when the dataset's manifest is given, its estimated
training cost as ``economics.upfront_usd`` so the break-even uses the real dataset. Route edits are
printed, not made: a route lives in the operator's own file, with their comments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Candidate:
    target: str
    model: str
    route: str
    shadow_share: float
    upfront_usd: float | None
    trained_at: float | None  # epoch seconds: the target's age starts here (retraining_every_months)

    def target_yaml(self) -> str:
        target: dict[str, str] = {"provider": "openai", "model": self.model}
        if self.trained_at is not None:
            target["trained_at"] = datetime.fromtimestamp(self.trained_at, UTC).isoformat(timespec="seconds")
        return yaml.safe_dump({"version": 1, "targets": {self.target: target}}, sort_keys=False)

    def route_edits(self) -> str:
        """The lines to add under ``routes.<route>`` in its policy file."""
        lines = [f"# under routes.{self.route}:", f"shadow: {{target: {self.target}, share: {self.shadow_share:g}}}"]
        if self.upfront_usd is not None:
            lines.append(f"economics: {{upfront_usd: {self.upfront_usd:.2f}, ...}}  # the dataset's training cost")
        return "\n".join(lines)

    def write(self, policies: Path) -> Path:
        """The target's own policy file in ``policies``; an existing file of that name is never overwritten."""
        path = policies / f"{self.target}.yaml"
        if path.exists():
            raise FileExistsError(f"{path} exists: choose another --target-name")
        path.write_text(f"# Written by hybrid-gateway finetune status: the fine-tuned candidate {self.model}.\n"
                        + self.target_yaml())
        return path


def candidate_for(model: str, route: str, shadow_share: float = 0.1, target: str | None = None,
                  upfront_usd: float | None = None, trained_at: float | None = None) -> Candidate:
    """``target`` defaults to a name made from the model id's suffix and job part (``ft-<suffix>-<id>``)."""
    parts = [part for part in model.split(":")[3:] if part]
    name = target or "ft-" + "-".join(re.sub(r"[^a-z0-9]+", "-", part.lower()).strip("-") for part in parts)
    return Candidate(name if name != "ft-" else "ft-candidate", model, route, shadow_share, upfront_usd, trained_at)
