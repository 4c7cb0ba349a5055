"""Router labels from captured traffic: a shadow answer from the fine-tuned target, graded against the
prompted answer it shadows, and callers' feedback on fine-tuned answers, written as the routing data is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.capture import CaptureStore
from gateway.cli.main import main
from gateway.dataset.labels import labels_of
from policies import load_policies
from routes.training.data import load_examples
from tests.capture.conftest import gateway_with
from tests.conftest import BIG_MODEL, SMALL_MODEL
from tests.support.chat import chat
from tests.support.fake_upstream import Action, FakeUpstream
from tests.support.metrics import scrape
from tests.support.polling import poll
from tests.support.servers import ServerThread

LABELLED = """
  labelled:
    allow_arm_override: true
    capture: {share: 1.0}
    shadow: {target: small, share: 1.0}
    arms:
      prompted: {target: big, system_prompt: Answer as the support desk.}
      fine_tuned: {target: small}
"""
# (question, prompted answer, fine-tuned shadow answer): the shadow agrees on the easy ones only
PAIRS = [("Where is my invoice?", "Invoices are under Settings > Billing.", "Invoices are under Settings > Billing."),
         ("How do I reset my password?", "Use the Forgot password link on the sign-in page.",
          "Use the Forgot password link on the sign in page."),
         ("Compare annual and monthly billing for a growing team and derive the break-even month.",
          "Annual billing saves 15% once the team is stable for ten months or more.", "I am not sure.")]


@pytest.fixture
def served(tmp_path: Path, fake_server: tuple[FakeUpstream, ServerThread], fake: FakeUpstream) -> Iterator[ServerThread]:
    with gateway_with(tmp_path, fake_server[1].url, LABELLED) as server:
        yield server


def test_paired_answers_and_feedback_become_routing_labels(served: ServerThread, fake: FakeUpstream,
                                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for question, prompted, tuned in PAIRS:  # one at a time: each shadow takes its own scripted answer
        fake.script_for(BIG_MODEL, Action(text=prompted)).script_for(SMALL_MODEL, Action(text=tuned))
        chat(served, "labelled", question, headers={"x-gateway-arm": "prompted"}, expect=200)
        poll(lambda: not fake.unmet(), "the shadow call")
    fake.script_for(SMALL_MODEL, Action(text="Refunds take five days."), Action(text="Refunds take five days."))
    judged = chat(served, "labelled", "How long do refunds take?", headers={"x-gateway-arm": "fine_tuned"},
                  expect=200)  # a fine-tuned answer its caller rates poorly (its shadow is the same model: no pair)
    poll(lambda: scrape(served.url, "gateway_shadow_requests_total") >= 4, "every shadow call")
    assert served.server.config.app.state.gateway.captures.flush(30)
    assert httpx.post(served.url + "/v1/feedback", json={
        "request_id": judged.headers["x-gateway-request-id"], "score": 0.2,
        "feedback_token": judged.headers["x-gateway-feedback-token"]}).status_code == 200

    policies = tmp_path / "policies"
    store = CaptureStore.open(None, tmp_path / "var")
    found = labels_of(store, load_policies(policies), "labelled", "f1", 0.5)
    assert (found.pairs, found.judged) == (3, 1)
    assert [(label.prompt, label.weak, label.source) for label in found.labels] == [
        (PAIRS[0][0], True, "pair"), (PAIRS[1][0], True, "pair"), (PAIRS[2][0], False, "pair"),
        ("How long do refunds take?", False, "feedback")]

    out = tmp_path / "labels"
    assert main(["dataset", "labels", "--route", "labelled", "--out", str(out), "--policies", str(policies),
                 "--data-dir", str(tmp_path / "var")]) == 0
    assert "4 labelled prompts (3 from paired answers, 1 from feedback)" in capsys.readouterr().out
    examples = load_examples(out)  # as the router's trainer reads the public routing data
    assert sorted((e.prompt, e.weak, e.strong) for e in examples) == sorted(
        (label.prompt, float(label.weak), 1.0) for label in found.labels)
