"""The fine-tuning dataset from captures: deterministic, disjoint, free of near duplicates across sets,
valid line by line for the provider, and priced like an independent computation."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest

from gateway.accounting.usage import estimate_prompt_tokens, estimate_tokens
from gateway.capture import CaptureStore, capture_row, captured
from gateway.capture.rows import CaptureFeedback
from gateway.dataset import ExportOptions, NoFineTuning, export
from gateway.dataset.dedupe import NEAR_DUPLICATE_COSINE
from gateway.dataset.export import DatasetError
from gateway.dataset.providers import OPENAI, line_problems
from policies import PolicySet, load_policies
from retrieval import MiniLMEncoder
from tests.capture.conftest import completed
from tests.support.support_traffic import support_questions

POLICY = """
version: 1
targets:
  big: {provider: openai, model: gpt-4o}
  tuned: {provider: openai, model: "ft:gpt-4o-mini-2024-07-18:acme::x1"}
routes:
  support:
    arms:
      prompted: {target: big, system_prompt: "You are the Lumen Freight support desk. Long rules follow..."}
      fine_tuned: {target: tuned, system_prompt: "Lumen Freight support."}
"""
SYSTEM = "Lumen Freight support."
PARAPHRASES = [("How do refunds work?", "How do refunds work exactly?"),
               ("Can I cancel my plan at any time?", "Can I cancel my plan anytime?")]


@pytest.fixture(scope="module")
def encoder() -> MiniLMEncoder:
    return MiniLMEncoder(threads=2)


@pytest.fixture
def policy(tmp_path: Path) -> PolicySet:
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "p.yaml").write_text(POLICY)
    return load_policies(directory)


def _questions() -> list[str]:
    asked = support_questions(160, seed=7)
    asked += [asked[3].upper(), "  " + asked[5] + "  "]  # exact duplicates, after case and spaces
    for first, second in PARAPHRASES:
        asked += [first, second]
    return asked


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CaptureStore]:
    """Captured support traffic: 70% prompted, scores across the bands, feedback on some."""
    draw = random.Random(11)
    opened = CaptureStore.open(None, tmp_path / "var")
    opened.migrate()
    rows = []
    asked = _questions()
    for index, question in enumerate(asked):
        done = completed(f"gw-{index:04d}", text=question,
                         answer=orjson.dumps({"choices": [{"message": {"content": f"Answer {index}: see the docs."}}]}))
        row = capture_row(captured(done), lambda text: text, lambda index=index: 1_000.0 + index)
        prompted = draw.random() < 0.7 or index >= len(asked) - 6  # the duplicates are prompted: selected
        rows.append(row._replace(arm="prompted" if prompted else "fine_tuned", score=round(draw.random(), 3)))
    opened.insert(rows)
    for row in rows[:40]:
        opened.add_feedback(CaptureFeedback(row.request_id, round(draw.random(), 2), None, None, 2_000.0),
                            replace=False)
    yield opened
    opened.close()


def _lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _asked(line: dict[str, object]) -> str:
    return "\n".join(str(m["content"]) for m in line["messages"] if m["role"] == "user")  # type: ignore[index, union-attr]


def test_the_split_is_deterministic_disjoint_and_free_of_near_duplicates_across_sets(
        store: CaptureStore, policy: PolicySet, encoder: MiniLMEncoder, tmp_path: Path) -> None:
    first = export(store, policy, ExportOptions("support", tmp_path / "a"), encoder.embed, now=lambda: 0.0)
    export(store, policy, ExportOptions("support", tmp_path / "b"), encoder.embed, now=lambda: 0.0)
    for name in ("train", "validation", "test", "manifest"):
        suffix = "json" if name == "manifest" else "jsonl"
        assert (tmp_path / "a" / f"{name}.{suffix}").read_bytes() == (tmp_path / "b" / f"{name}.{suffix}").read_bytes()
    sets = {name: _lines(tmp_path / "a" / f"{name}.jsonl") for name in ("train", "validation", "test")}
    asked = {name: [_asked(line) for line in lines] for name, lines in sets.items()}
    assert not set(asked["train"]) & set(asked["test"]) and not set(asked["validation"]) & set(asked["test"])
    assert not set(asked["train"]) & set(asked["validation"])
    assert first.counts["exact_duplicates"] == 2 and first.counts["near_duplicates"] >= len(PARAPHRASES)
    train, test = (encoder.embed(asked[name]) for name in ("train", "test"))
    train /= np.linalg.norm(train, axis=1, keepdims=True)
    test /= np.linalg.norm(test, axis=1, keepdims=True)
    assert float((test @ train.T).max()) < NEAR_DUPLICATE_COSINE  # no test example has a twin in training
    kept = first.counts["train"] + first.counts["validation"] + first.counts["test"]
    assert first.counts["test"] == pytest.approx(0.1 * kept, abs=len(first.bands["test"]) + 1)
    assert first.counts["validation"] == pytest.approx(0.2 * (kept - first.counts["test"]), abs=5)
    assert set(first.bands["test"]) == set(first.bands["train"])  # stratified: every band in every set


def test_every_line_is_valid_and_distils_the_prompted_answers_under_the_fine_tuned_prompt(
        store: CaptureStore, policy: PolicySet, encoder: MiniLMEncoder, tmp_path: Path) -> None:
    manifest = export(store, policy, ExportOptions("support", tmp_path / "out"), encoder.embed)
    prompted = {row.answer for row in store.read("support") if row.arm == "prompted"}
    for name in ("train", "validation", "test"):
        for line in _lines(tmp_path / "out" / f"{name}.jsonl"):
            messages = line["messages"]
            tokens = estimate_prompt_tokens(messages[:-1]) + estimate_tokens(messages[-1]["content"])  # type: ignore[index]
            assert line_problems(line, tokens, OPENAI) == []
            assert messages[0] == {"role": "system", "content": SYSTEM}  # type: ignore[index]
            assert messages[-1]["content"] in prompted  # type: ignore[index]
    assert manifest.counts["selected"] == sum(1 for row in store.read("support") if row.arm == "prompted")


def test_the_training_cost_is_the_training_files_tokens_times_epochs_times_the_price(
        store: CaptureStore, policy: PolicySet, encoder: MiniLMEncoder, tmp_path: Path) -> None:
    manifest = export(store, policy, ExportOptions("support", tmp_path / "out", epochs=4), encoder.embed)
    tokens = 0
    for line in _lines(tmp_path / "out" / "train.jsonl"):
        messages = line["messages"]
        tokens += estimate_prompt_tokens(messages[:-1]) + estimate_tokens(messages[-1]["content"])  # type: ignore[index]
    assert manifest.tokens["train"] == tokens
    assert manifest.base_model == "gpt-4o-mini-2024-07-18" and manifest.training_usd_per_million == 3.0
    assert manifest.estimated_training_cost_usd == pytest.approx(tokens * 4 * 3.0 / 1_000_000, abs=1e-6)
    overridden = export(store, policy, ExportOptions("support", tmp_path / "o", training_usd_per_million=10.0),
                        encoder.embed)
    assert overridden.estimated_training_cost_usd == pytest.approx(tokens * 3 * 10.0 / 1_000_000, abs=1e-6)


def test_feedback_filters_and_the_providers_refusals(store: CaptureStore, policy: PolicySet,
                                                     encoder: MiniLMEncoder, tmp_path: Path) -> None:
    judged = store.feedback("support")
    liked = {rid for rid, f in judged.items() if f.score is not None and f.score >= 0.3}
    with pytest.raises(DatasetError, match="at least 10"):  # too few liked prompted answers for OpenAI's minimum
        export(store, policy, ExportOptions("support", tmp_path / "few", min_feedback=0.99), encoder.embed)
    both = export(store, policy, ExportOptions("support", tmp_path / "liked", min_feedback=0.3, source="both",
                                               test_share=0.0), encoder.embed)
    assert both.counts["selected"] == len(liked)
    with pytest.raises(NoFineTuning, match="Anthropic offers no public fine-tuning"):
        export(store, policy, ExportOptions("support", tmp_path / "claude", provider="anthropic"), encoder.embed)
    assert not (tmp_path / "claude").exists() and not (tmp_path / "few").exists()


def test_the_command_writes_the_dataset_and_refuses_anthropic_in_one_line(store: CaptureStore, policy: PolicySet,
                                                                          tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    command = [sys.executable, "-m", "gateway.cli", "dataset", "export", "--policies", str(policies),
               "--data-dir", str(tmp_path / "var")]
    done = subprocess.run([*command, "--route", "support", "--out", str(tmp_path / "ds")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "estimated training cost $" in done.stdout
    assert orjson.loads((tmp_path / "ds" / "manifest.json").read_bytes())["route"] == "support"
    refused = subprocess.run([*command, "--route", "support", "--provider", "anthropic", "--out", str(tmp_path / "no")],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and refused.stderr.startswith("cannot export: Anthropic offers no public")
