"""Export a route's captures as a fine-tuning dataset: three JSONL files and a manifest.

In order: the captures of the time range, turned into examples (``examples``), stripped of exact and near
duplicates (``dedupe``), each line checked against the provider's rules (``providers``; a line that fails is
left out and counted), split (``split``), then written. The manifest says what was kept and why the rest
was not, the token totals, and the **estimated training cost**: the training file's tokens x epochs x the
provider's price per training token (only the training file is billed; validation is not). Nothing is
written when the provider offers no fine-tuning or too few examples remain.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from gateway.capture import CaptureStore
from gateway.dataset.dedupe import NEAR_DUPLICATE_COSINE, Embed, deduplicate
from gateway.dataset.examples import Example, Source, examples_of
from gateway.dataset.providers import FineTuningRules, line_problems, rules_for
from gateway.dataset.split import band, split
from policies import PolicySet

SystemPrompt = Literal["fine_tuned", "none"]


class DatasetError(ValueError):
    """The dataset cannot be made as asked (unknown route, too few examples); the CLI prints it and exits 2."""


@dataclass(frozen=True)
class ExportOptions:
    route: str
    out: Path
    since: float | None = None
    until: float | None = None
    min_feedback: float | None = None
    source: Source = "prompted"
    system_prompt: SystemPrompt = "fine_tuned"
    provider: str | None = None  # default: the provider of the route's fine-tuned arm's target
    base_model: str | None = None  # default: the provider's usual fine-tuning base
    epochs: int = 3
    training_usd_per_million: float | None = None  # overrides the provider's price table
    test_share: float = 0.1
    validation_share: float = 0.2
    near_duplicate_cosine: float = NEAR_DUPLICATE_COSINE


@dataclass(frozen=True)
class Manifest:
    route: str
    format: str
    provider: str
    base_model: str
    created_at: float
    filters: dict[str, Any]
    counts: dict[str, int]
    tokens: dict[str, int]
    bands: dict[str, dict[str, int]]
    epochs: int
    training_usd_per_million: float | None
    estimated_training_cost_usd: float | None
    token_counts: str = "estimated (tokenizer-free, within ~10% of BPE on English prose)"
    files: dict[str, str] = field(default_factory=lambda: {
        "train": "train.jsonl", "validation": "validation.jsonl", "test": "test.jsonl"})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rules(policy: PolicySet, options: ExportOptions) -> tuple[FineTuningRules, str | None]:
    """The provider's rules, and the system prompt the examples carry."""
    route = policy.routes.get(options.route)
    if route is None:
        raise DatasetError(f"no route '{options.route}' in the policies (routes: {', '.join(sorted(policy.routes))})")
    tuned = route.arms.fine_tuned
    provider = options.provider or (policy.targets[tuned.target].provider if tuned is not None else None)
    if provider is None:
        raise DatasetError(f"route '{options.route}' has no fine_tuned arm: say which provider the dataset is for "
                           "with --provider")
    prompt = tuned.system_prompt if tuned is not None and options.system_prompt == "fine_tuned" else None
    return rules_for(provider), prompt


def _valid(examples: Sequence[Example], rules: FineTuningRules) -> list[Example]:
    return [example for example in examples if not line_problems(example.line(), example.tokens, rules)]


def _write(path: Path, examples: Sequence[Example]) -> None:
    path.write_bytes(b"".join(orjson.dumps(example.line()) + b"\n" for example in examples))


def export(store: CaptureStore, policy: PolicySet, options: ExportOptions, embed: Embed,
           now: Callable[[], float] = time.time) -> Manifest:
    """Write the dataset under ``options.out``; its manifest."""
    rules, system_prompt = _rules(policy, options)
    rows = store.read(options.route, options.since, options.until)
    examples = examples_of(rows, store.feedback(options.route), system_prompt, options.source, options.min_feedback)
    unique = deduplicate(examples, embed, options.near_duplicate_cosine)
    valid = _valid(unique.kept, rules)
    splits = split(valid, options.test_share, options.validation_share)
    if len(splits.train) < rules.min_examples:
        raise DatasetError(f"{len(splits.train)} training examples after filtering ({len(rows)} captured, "
                           f"{len(examples)} selected, {unique.exact} exact and {unique.near} near duplicates, "
                           f"{len(unique.kept) - len(valid)} invalid): {rules.provider} needs at least "
                           f"{rules.min_examples}; capture more traffic or relax the filters")
    base = options.base_model or rules.default_base_model
    price = options.training_usd_per_million
    if price is None:
        price = rules.training_usd_per_million.get(base)
    sets = {"train": splits.train, "validation": splits.validation, "test": splits.test}
    tokens = {name: sum(example.tokens for example in members) for name, members in sets.items()}
    options.out.mkdir(parents=True, exist_ok=True)
    for name, members in sets.items():
        _write(options.out / f"{name}.jsonl", members)
    manifest = Manifest(
        route=options.route, format="openai-chat", provider=rules.provider, base_model=base, created_at=now(),
        filters={"since": options.since, "until": options.until, "min_feedback": options.min_feedback,
                 "source": options.source, "system_prompt": options.system_prompt,
                 "near_duplicate_cosine": options.near_duplicate_cosine},
        counts={"captured": len(rows), "selected": len(examples), "exact_duplicates": unique.exact,
                "near_duplicates": unique.near, "invalid": len(unique.kept) - len(valid),
                **{name: len(members) for name, members in sets.items()}},
        tokens=tokens,
        bands={name: _bands(members) for name, members in sets.items()},
        epochs=options.epochs, training_usd_per_million=price,
        estimated_training_cost_usd=None if price is None else round(tokens["train"] * options.epochs * price / 1e6,
                                                                     6))
    (options.out / "manifest.json").write_bytes(orjson.dumps(manifest.as_dict(), option=orjson.OPT_INDENT_2))
    return manifest


def _bands(examples: Sequence[Example]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for example in examples:
        counted[band(example.score)] = counted.get(band(example.score), 0) + 1
    return dict(sorted(counted.items()))
