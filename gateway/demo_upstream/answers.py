"""Deterministic answers that visibly reflect the system prompt, injected context and tools.

Same request, same answer: tests and demos can predict and check it, and a
person can see at a glance which arm answered and what context it was given.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.accounting.usage import content_text
from gateway.demo_upstream.models import SimulatedModel

# A numbered passage as the knowledge layer renders it: "[1] (source: pricing.md)" then its text.
_PASSAGE = re.compile(r"^\[(\d+)\] \(source: ([^)\n]+)\)\n(.*?)(?=\n\n\[\d+\] \(source:|\n</knowledge>|\Z)", re.M | re.S)
_REASONING = re.compile(r"\b(?:why|explain|compare|difference|calculate|estimate|derive|prove|analy[sz]e|design|"
                        r"trade-?offs?|step by step|what if|optimi[sz]e)\b", re.I)
_TRAINED_WORDS = 30
_FILLER = (
    "This answer is simulated by the demo upstream.",
    "Real deployments replace it with a provider key.",
    "Every token here is counted and priced like a real call.",
    "The gateway's metrics and dashboard show this request.",
)




def _first_sentence(text: str, limit: int = 160) -> str:
    sentence = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]
    return sentence[:limit].rstrip()


def _seed(model: SimulatedModel, messages: Sequence[Mapping[str, Any]]) -> int:
    digest = hashlib.sha256(model.id.encode())
    for message in messages:
        digest.update(content_text(message.get("content")).encode())
    return int.from_bytes(digest.digest()[:4], "big")


def beyond_training(question: str) -> bool:
    """Where a hedging model (``SimulatedModel.hedges``) says it is not sure: a long question, or one asking
    for reasoning, which a fine-tune on frequent support questions never learned."""
    return len(question.split()) > _TRAINED_WORDS or _REASONING.search(question) is not None


def compose(model: SimulatedModel, messages: Sequence[Mapping[str, Any]]) -> str:
    system = " ".join(content_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
    question = next((content_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    if model.hedges and beyond_training(question):
        return f"[{model.id}, {model.role}] I'm not sure; please ask the support team."
    parts = [f"[{model.id}, {model.role}] Answering: \"{_first_sentence(question, 120)}\"."]
    persona = system.rsplit("</knowledge>", 1)[-1].strip()  # the arm's own prompt, after any injected context
    if persona:
        parts.append(f"Following the instructions \"{_first_sentence(persona, 100)}\".")
    quoted = 0
    for number, source, text in _PASSAGE.findall(system):
        body = [line for line in text.splitlines() if line.strip() and " > " not in line]  # skip heading paths
        sentence = _first_sentence(" ".join(body))
        if sentence and quoted < 2:  # a passage that is only a heading has nothing to quote
            parts.append(f"According to [{number}] ({source}): {sentence}")
            quoted += 1
    seed = _seed(model, messages)
    low, high = model.answer_tokens
    target_words = low + seed % (high - low + 1)
    words = sum(len(p.split()) for p in parts)
    index = seed
    while words < target_words * 0.75:
        filler = _FILLER[index % len(_FILLER)]
        parts.append(filler)
        words += len(filler.split())
        index += 1
    return " ".join(parts)


def tool_call(tools: Sequence[Mapping[str, Any]], choice: Any) -> dict[str, Any] | None:
    """A call of the forced tool, else the first one, with placeholder arguments of the right types."""
    if choice == "none" or not tools:
        return None
    name = choice.get("function", {}).get("name") if isinstance(choice, Mapping) else None
    function = next((t["function"] for t in tools if t.get("function", {}).get("name") == name),
                    tools[0].get("function", {}))
    properties = (function.get("parameters") or {}).get("properties") or {}
    samples = {"string": "example", "integer": 1, "number": 1.0, "boolean": True, "array": [], "object": {}}
    arguments = {key: samples.get(str(spec.get("type")), "example") for key, spec in properties.items()}
    return {"name": function.get("name", "tool"), "arguments": arguments}
