"""What each provider's fine-tuning accepts, and what its training costs; who offers none.

The decision guide's provider constraint (Step 13): OpenAI and Google fine-tune, Anthropic does not, so a
dataset for an Anthropic target is refused with the reason instead of being written for nothing (the reason
is ``policies.NO_PUBLIC_FINE_TUNING``'s, which the policy check also applies to fine_tuned arms). The
OpenAI chat format's rules: one ``{"messages": [...]}`` object per line; roles ``system``, ``user``,
``assistant``; after any system messages, user and assistant alternate, starting with user and ending
with the assistant's answer; at least 10 examples; at most ``max_tokens_per_example`` tokens each. Training
prices are USD per million training tokens, as OpenAI listed them for its fine-tunable models; a user
overrides them (``--training-price``) when they change.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from policies import FINE_TUNING_INSTEAD, NO_PUBLIC_FINE_TUNING


class NoFineTuning(ValueError):
    """The provider offers no public fine-tuning: there is no job to prepare a dataset for."""


@dataclass(frozen=True)
class FineTuningRules:
    provider: str
    min_examples: int
    max_tokens_per_example: int
    training_usd_per_million: Mapping[str, float]  # by base model
    default_base_model: str


OPENAI = FineTuningRules("openai", 10, 65_536, MappingProxyType({
    "gpt-4.1-2025-04-14": 25.0,
    "gpt-4.1-mini-2025-04-14": 5.0,
    "gpt-4.1-nano-2025-04-14": 1.5,
    "gpt-4o-2024-08-06": 25.0,
    "gpt-4o-mini-2024-07-18": 3.0,
    "gpt-3.5-turbo-0125": 8.0,
}), "gpt-4o-mini-2024-07-18")

_RULES = MappingProxyType({"openai": OPENAI, "azure": OPENAI})
_ROLES = frozenset({"system", "user", "assistant"})


def rules_for(provider: str) -> FineTuningRules:
    """The rules of ``provider``'s fine-tuning; ``NoFineTuning`` for a provider without it."""
    if provider in NO_PUBLIC_FINE_TUNING:
        raise NoFineTuning(f"{NO_PUBLIC_FINE_TUNING[provider]}: {FINE_TUNING_INSTEAD}.")
    rules = _RULES.get(provider)
    if rules is None:
        raise NoFineTuning(f"no fine-tuning format is known for provider '{provider}' (known: "
                           f"{', '.join(sorted(_RULES))}); export with --provider openai for OpenAI's format.")
    return rules


def line_problems(line: Mapping[str, Any], tokens: int, rules: FineTuningRules) -> list[str]:
    """What is wrong with one dataset line under ``rules``; empty when it is valid."""
    messages = line.get("messages")
    if set(line) != {"messages"} or not isinstance(messages, list) or not messages:
        return ["a line must be exactly {\"messages\": [...]} with at least one message"]
    problems: list[str] = []
    roles = [message.get("role") if isinstance(message, Mapping) else None for message in messages]
    for index, (message, role) in enumerate(zip(messages, roles, strict=True)):
        if role not in _ROLES:
            problems.append(f"messages[{index}]: role {role!r} is not one of {sorted(_ROLES)}")
        elif not isinstance(message.get("content"), str) or not message["content"].strip():
            problems.append(f"messages[{index}]: content must be non-empty text")
    turns = [role for role in roles if role != "system"]
    leading = next((index for index, role in enumerate(roles) if role != "system"), len(roles))
    if "system" in roles[leading:]:
        problems.append("system messages must come before the conversation")
    if not turns or turns[0] != "user" or turns[-1] != "assistant":
        problems.append("the conversation must start with a user message and end with the assistant's answer")
    if any(a == b for a, b in itertools.pairwise(turns)):
        problems.append("user and assistant messages must alternate")
    if tokens > rules.max_tokens_per_example:
        problems.append(f"{tokens} tokens: more than the {rules.max_tokens_per_example} one example may have")
    return problems
