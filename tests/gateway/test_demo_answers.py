"""The demo upstream's answers: deterministic, and quoting the context the gateway injected."""

from __future__ import annotations

from gateway.demo_upstream.answers import compose
from gateway.demo_upstream.models import MODELS

LARGE = MODELS["demo-large"]
CONTEXT = """<knowledge>
[1] (source: refund-policy.md)
Refund policy > Annual plans

[2] (source: refund-policy.md)
Refund policy > Annual plans
An annual plan can be cancelled for a full refund within 30 days. Later, no refund.

[3] (source: pricing.md)
Growth costs $349 per month.

[4] (source: sla.md)
Uptime is 99.9%.
</knowledge>
You are precise."""


def test_answers_quote_passages_with_text_and_skip_bare_headings() -> None:
    messages = [{"role": "system", "content": CONTEXT}, {"role": "user", "content": "Refunds?"}]
    answer = compose(LARGE, messages)
    assert "According to [1]" not in answer  # a heading alone has nothing to quote
    assert "According to [2] (refund-policy.md): An annual plan can be cancelled for a full refund within 30 days." \
        in answer
    assert "According to [3] (pricing.md): Growth costs $349 per month." in answer
    assert "According to [4]" not in answer  # two quotes at most
    assert 'Following the instructions "You are precise."' in answer
    assert compose(LARGE, messages) == answer


def test_only_the_early_fine_tune_hedges_and_only_beyond_its_training() -> None:
    early, current = MODELS["ft:demo-small:hybrid-gateway:support:v0"], MODELS["ft:demo-small:hybrid-gateway:support:v1"]
    asked = {"How much does the Growth plan cost?": False,
             "Explain why my webhook signature check fails.": True,  # asks for reasoning
             " ".join(["word"] * 31) + "?": True}  # longer than a frequent support question
    for question, beyond in asked.items():
        messages = [{"role": "user", "content": question}]
        assert ("not sure" in compose(early, messages)) is beyond
        assert "not sure" not in compose(current, messages) and "not sure" not in compose(LARGE, messages)
