"""The policy change a finished fine-tune suggests: a target for the ``ft:`` model, shadowed on its route.

The guide's Step 18 compares the new model with the current one on real traffic before anyone switches:
the candidate target is written as its own policy file (the running gateway hot-reloads it), and the
route gets a ``shadow:`` share to that target, plus, when the dataset's manifest is given, its estimated
training cost as ``economics.upfront_usd`` so the break-even uses the real dataset. The route is edited
in place as text (``route_edit``), comments kept; when that is not safe the lines are printed instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from gateway.finetune.route_edit import RouteEditError, edit_route
from policies import PolicySet, Shadow


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

    def _file(self) -> str:
        return f"# Written by hybrid-gateway finetune status: the fine-tuned candidate {self.model}.\n" + self.target_yaml()

    def _applied(self, policy: PolicySet) -> bool:
        """The policies as this candidate means them: its target, shadowed at its share, the cost set."""
        route, target = policy.routes.get(self.route), policy.targets.get(self.target)
        return (route is not None and target is not None and target.model == self.model
                and route.shadow == Shadow(target=self.target, share=self.shadow_share)
                and (self.upfront_usd is None or (route.economics is not None
                                                  and route.economics.upfront_usd == round(self.upfront_usd, 2))))

    def write(self, policies: Path) -> list[Path]:
        """The target's own policy file in ``policies`` and, where it can be done safely, the route's edit;
        an existing file of the target's name is never overwritten. ``RouteEditError`` says what is left."""
        path = policies / f"{self.target}.yaml"
        if path.exists():
            raise FileExistsError(f"{path} exists: choose another --target-name")
        try:
            edited = edit_route(policies, self.route, self.target, self.shadow_share, self.upfront_usd, self._applied,
                                {path.name: self._file()})
        except RouteEditError:
            path.write_text(self._file(), encoding="utf-8")  # the target alone; the route lines are printed
            raise
        return [path, edited]


def candidate_for(model: str, route: str, shadow_share: float = 0.1, target: str | None = None,
                  upfront_usd: float | None = None, trained_at: float | None = None) -> Candidate:
    """``target`` defaults to a name made from the model id's suffix and job part (``ft-<suffix>-<id>``)."""
    parts = [part for part in model.split(":")[3:] if part]
    name = target or "ft-" + "-".join(re.sub(r"[^a-z0-9]+", "-", part.lower()).strip("-") for part in parts)
    return Candidate(name if name != "ft-" else "ft-candidate", model, route, shadow_share, upfront_usd, trained_at)
