"""Per-token prices: the target's own override, else litellm's bundled price map.

The map is read as a JSON file from the installed litellm package without
importing litellm (6 s) and without the network: nothing is fetched at run time.
Fine-tuned ids such as ``ft:gpt-4o-mini-2024-07-18:org::abc`` are priced by
their base entry (``ft:gpt-4o-mini-2024-07-18``), which litellm's map carries.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from policies import Target

_MAP_FILE = "model_prices_and_context_window_backup.json"


@dataclass(frozen=True)
class TokenPrice:
    """USD per token."""

    input: float
    output: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return prompt_tokens * self.input + completion_tokens * self.output


@cache
def _bundled_map() -> dict[str, Any]:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / _MAP_FILE
    return orjson.loads(path.read_bytes()) if path.is_file() else {}


def _candidates(target: Target) -> list[str]:
    model = target.model
    names = [model, f"{target.provider}/{model}"]
    if model.startswith("ft:"):
        names.append(":".join(model.split(":")[:2]))
    return names


@cache
def _lookup(provider: str, model: str) -> TokenPrice | None:
    table = _bundled_map()
    for name in _candidates(Target(provider=provider, model=model)):
        entry = table.get(name)
        if isinstance(entry, dict) and "input_cost_per_token" in entry:
            return TokenPrice(float(entry["input_cost_per_token"]), float(entry.get("output_cost_per_token", 0.0)))
    return None


def price_of(target: Target) -> TokenPrice | None:
    """The target's price per token, or None when neither the policy nor litellm's map knows it."""
    if target.price is not None:
        return TokenPrice(target.price.input_per_million / 1e6, target.price.output_per_million / 1e6)
    return _lookup(target.provider, target.model)
