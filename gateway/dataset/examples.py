"""Training examples from captures: whose answer, under which system prompt, with how many tokens.

Distillation is the default: each example carries the **fine-tuned arm's** short system prompt (from
the route's policy) before the client's messages, and the captured **answer** (by default only the
prompted arm's: the answer the fine-tune should learn to give without the long prompt). Token counts
use the gateway's tokenizer-free estimate (no tokenizer may be downloaded), marked as such in the
manifest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gateway.accounting.usage import content_text, estimate_prompt_tokens, estimate_tokens
from gateway.capture import CaptureFeedback, CaptureRow

Source = Literal["prompted", "fine_tuned", "both"]


@dataclass(frozen=True, slots=True)
class Example:
    request_id: str
    messages: tuple[Mapping[str, Any], ...]  # the training conversation, ending with the assistant's answer
    score: float | None  # the classifier's, for stratification
    tokens: int

    @property
    def prompt_text(self) -> str:
        """What the caller asked: the text dedupe compares."""
        return "\n".join(content_text(m.get("content")) for m in self.messages if m.get("role") == "user")

    def line(self) -> dict[str, Any]:
        return {"messages": list(self.messages)}


def _kept(row: CaptureRow, source: Source, feedback: CaptureFeedback | None, min_feedback: float | None) -> bool:
    if source != "both" and row.arm != source:
        return False
    if not row.answer.strip():
        return False
    if min_feedback is None:
        return True
    if feedback is None:
        return False
    if feedback.score is not None:
        return feedback.score >= min_feedback
    return feedback.success is True  # a thumbs-up without a score passes any threshold; a thumbs-down none


def examples_of(rows: Sequence[CaptureRow], feedback: Mapping[str, CaptureFeedback], system_prompt: str | None,
                source: Source = "prompted", min_feedback: float | None = None) -> list[Example]:
    """The captures that qualify, as examples under ``system_prompt`` (None: no system message)."""
    made: list[Example] = []
    for row in rows:
        if not _kept(row, source, feedback.get(row.request_id), min_feedback):
            continue
        head = [{"role": "system", "content": system_prompt}] if system_prompt else []
        messages = (*head, *row.messages, {"role": "assistant", "content": row.answer})  # as the arm will see it
        made.append(Example(row.request_id, messages, row.score,
                            estimate_prompt_tokens(messages[:-1]) + estimate_tokens(row.answer)))
    return made
