"""What each provider allows a fine-tuned arm to be: the guide's Step 13, "consider provider constraints".

The guide's warning is about a choice made before any money is spent: Anthropic offers no public
fine-tuning (Claude relies on prompting), so a route whose ``fine_tuned`` arm points at an
Anthropic target can never hold a tuned model, and is refused. Where a provider names its tuned
models in a recognisable way, an arm whose model does not look like one is probably still the base
model (a fine-tune not yet deployed, a copied target): that is allowed, since a base model can
stand in on purpose, but said. Self-hosted servers (vLLM, TGI, Ollama) and Azure deployments name
models freely, so they are not checked.
"""

from __future__ import annotations

from types import MappingProxyType

from policies.schema import Target

NO_PUBLIC_FINE_TUNING = MappingProxyType({
    "anthropic": "Anthropic offers no public fine-tuning (Claude relies on prompting, per the decision guide)"})
"""Providers that cannot serve a model tuned by the user, with the reason (the policy check and the dataset
export both refuse them with it)."""
INSTEAD = "keep this route on its prompted arm, or fine-tune an OpenAI, Google or self-hosted model"

FINE_TUNED_PREFIXES = MappingProxyType({"openai": "ft:"})
"""How a provider's tuned model ids start (OpenAI: ``ft:gpt-4o-mini-2024-07-18:org::id``)."""


def fine_tuned_arm_error(target_name: str, target: Target) -> str | None:
    """Why ``target`` cannot serve a fine-tuned arm at all, or None."""
    reason = NO_PUBLIC_FINE_TUNING.get(target.provider)
    if reason is None:
        return None
    return f"target {target_name!r} cannot serve a fine_tuned arm: {reason}: {INSTEAD}"


def fine_tuned_arm_warning(target_name: str, target: Target) -> str | None:
    """Why ``target``'s model looks like a base model rather than a tuned one, or None."""
    prefix = FINE_TUNED_PREFIXES.get(target.provider)
    if prefix is None or target.model.startswith(prefix):
        return None
    return (f"target {target_name!r} ({target.provider} model {target.model!r}) is not a fine-tuned model "
            f"(its tuned models start with {prefix!r}): the fine_tuned arm is serving a base model")
