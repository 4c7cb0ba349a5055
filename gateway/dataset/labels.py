"""Router training labels from a route's own captured traffic: would the fine-tuned answer have done?

Two sources, each giving one prompt a label:

- **Paired answers**: a capture the prompted arm answered, with a shadow answer from the fine-tuned
  target (``shadow: {target: <the fine_tuned arm's target>}``). The fine-tuned answer is graded against the
  prompted one (``exact``, token ``f1`` or MiniLM ``similarity``); at or above ``threshold`` it would have done.
- **Feedback**: a capture the fine-tuned arm answered and a caller judged: it did when the score reaches
  ``threshold`` of the route's scale (or ``success`` is true), it did not otherwise.

The prompted answer is the reference, so the strong arm counts as right on every labelled prompt. The rows
are written as the public routing data is (a CSV of ``prompt`` and the two models' correctness), so
``hybrid-gateway router train --data DIR`` and ``router eval --data DIR`` take them as they are, with the
project's fixed hash split holding a fifth of the prompts out as test.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from gateway.accounting.usage import content_text
from gateway.capture import CaptureFeedback, CaptureRow, CaptureStore
from gateway.dataset.dedupe import Embed, unit_rows
from gateway.evaluation.scoring import exact_match, token_f1
from policies import FeedbackScale, PolicySet
from routes.training.data import STRONG_MODEL, WEAK_MODEL

Grader = Literal["exact", "f1", "similarity"]


@dataclass(frozen=True, slots=True)
class Label:
    prompt: str
    weak: bool  # the fine-tuned answer would have done
    source: Literal["pair", "feedback"]


@dataclass(frozen=True, slots=True)
class LabelSet:
    labels: list[Label]
    pairs: int
    judged: int


def _prompt(row: CaptureRow) -> str:
    return "\n".join(content_text(m.get("content")) for m in row.messages if m.get("role") == "user").strip()


def _grades(grader: Grader, answers: Sequence[str], references: Sequence[str], embed: Embed | None) -> list[float]:
    if grader == "exact":
        return [exact_match(a, r) for a, r in zip(answers, references, strict=True)]
    if grader == "f1":
        return [token_f1(a, r) for a, r in zip(answers, references, strict=True)]
    if embed is None:
        raise ValueError("the similarity grader needs an encoder")
    if not answers:
        return []
    left, right = unit_rows(embed(list(answers))), unit_rows(embed(list(references)))
    return [float(x) for x in np.sum(left * right, axis=1)]


def _judged(feedback: CaptureFeedback, scale: FeedbackScale, threshold: float) -> bool:
    if feedback.score is not None:
        return (feedback.score - scale.min) / (scale.max - scale.min) >= threshold
    return feedback.success is True


def labels_of(store: CaptureStore, policy: PolicySet, route: str, grader: Grader = "f1", threshold: float = 0.5,
              embed: Embed | None = None) -> LabelSet:
    """The route's labelled prompts, one per capture that can be labelled, in capture order."""
    found = policy.routes.get(route)
    if found is None or found.arms.fine_tuned is None:
        raise ValueError(f"route '{route}' needs a fine_tuned arm to label its traffic for routing")
    tuned_target = found.arms.fine_tuned.target
    capture = found.capture
    scale = capture.feedback if capture is not None and capture.feedback is not None else FeedbackScale()
    rows, shadows, feedback = store.read(route), store.shadows(route), store.feedback(route)
    paired = [(row, shadows[row.request_id][tuned_target]) for row in rows
              if row.arm == "prompted" and tuned_target in shadows.get(row.request_id, {})]
    grades = _grades(grader, [answer for _, answer in paired], [row.answer for row, _ in paired], embed)
    by_pair = {row.request_id: grade >= threshold for (row, _), grade in zip(paired, grades, strict=True)}
    labels: list[Label] = []
    judged = 0
    for row in rows:
        prompt = _prompt(row)
        if not prompt:
            continue
        if row.request_id in by_pair:
            labels.append(Label(prompt, by_pair[row.request_id], "pair"))
        elif row.arm == "fine_tuned" and row.request_id in feedback:
            judged += 1
            labels.append(Label(prompt, _judged(feedback[row.request_id], scale, threshold), "feedback"))
    return LabelSet(labels, len(paired), judged)


def write_labels(labels: Sequence[Label], path: Path) -> None:
    """As the public routing sets are written: ``prompt`` and each model's correctness, True or False."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["prompt", WEAK_MODEL, STRONG_MODEL])
        writer.writeheader()
        for label in labels:
            writer.writerow({"prompt": label.prompt, WEAK_MODEL: label.weak, STRONG_MODEL: True})


def counts(labels: Sequence[Label]) -> Mapping[str, int]:
    return {"labels": len(labels), "fine_tuned_would_do": sum(label.weak for label in labels),
            "from_pairs": sum(label.source == "pair" for label in labels),
            "from_feedback": sum(label.source == "feedback" for label in labels)}

