"""What the cascade and ensemble tests share: a fine-tuned and a judge target on the fake upstream, their
prices, and the ``x-gateway-calls`` header read back as (arm, target, cost) items."""

from __future__ import annotations

import re

# Targets on the session's fake upstream (format with url=...), beside conftest's ``big`` ($2/$8 per million).
TARGETS = """
version: 1
targets:
  tuned:
    provider: openai
    model: ft:tuned-model
    api_base: {url}/v1
    price: {{input_per_million: 0.5, output_per_million: 1.0}}
  judge:
    provider: openai
    model: judge-model
    api_base: {url}/v1
    price: {{input_per_million: 1.0, output_per_million: 1.0}}
routes:"""
TUNED, JUDGE = "ft:tuned-model", "judge-model"
PRICES = {"big": (2.0, 8.0), "tuned": (0.5, 1.0), "judge": (1.0, 1.0)}


def price(target: str, text: str) -> float:
    """What the fake's answer ``text`` costs at ``target`` (the fake counts 11 prompt tokens, one per word)."""
    per_input, per_output = PRICES[target]
    return (11 * per_input + len(text.split(" ")) * per_output) / 1e6


def calls_of(header: str) -> list[tuple[str, str, float]]:
    """``x-gateway-calls`` (or its stream comment) as (arm, target, cost) items, in order."""
    found = re.findall(r'(\w+);target="([^"]+)";cost="([^"]+)"', header)
    return [(arm, target, float(cost)) for arm, target, cost in found]
