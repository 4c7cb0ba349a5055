"""Short customer-support questions about Lumen Freight (the demo corpus), not benchmark prompts,
and complexity scores packed as tightly as theirs, for tests of the sketch without a model.

Their complexity scores cluster far from the classifier's training mix (MMLU, GSM8K, MT-Bench),
which is what live calibration must cope with. Deterministic: the same seed gives the same list.
"""

from __future__ import annotations

import itertools
import random

import numpy as np

TOPICS = (
    "refunds", "a refund on an annual plan", "the Starter plan", "the Growth plan", "the Enterprise plan",
    "overage charges", "annual billing", "extra seats", "the free trial", "API keys", "OAuth 2.0",
    "API scopes", "rate limits", "bulk endpoints", "webhooks", "webhook signatures", "webhook retries",
    "the sandbox", "live keys", "onboarding", "training sessions", "SSO", "two-factor login",
    "data retention", "deleting my data", "SOC 2", "ISO 27001", "reporting a vulnerability", "the uptime SLA",
    "service credits", "the status page", "support hours", "response times", "phone support",
    "the Shopify integration", "the SAP connector", "carrier integrations", "DHL tracking", "Zapier",
    "the changelog", "version 4.8", "ETA predictions", "dock scheduling", "freight audit", "invoices",
    "the billing date", "cancelling my plan", "user roles", "audit logs", "exporting shipments",
)
TEMPLATES = (
    "How do {t} work?", "What is {t}?", "Tell me about {t}.", "Do you support {t}?",
    "Where can I find {t}?", "Is {t} included in my plan?", "How much does {t} cost?",
    "Can I change {t}?", "Who do I contact about {t}?", "What are the limits on {t}?",
    "Is there documentation for {t}?", "How do I set up {t}?", "Why is {t} not working for me?",
    "When was {t} last updated?", "Can you explain {t} briefly?", "What happens with {t} if I downgrade?",
    "Hi, quick question about {t}.", "{t}: how long does it take?", "Help with {t} please",
    "Does {t} cost extra on the annual plan?", "Is {t} available in Germany?", "What's new in {t}?",
    "My manager asked about {t}, what should I tell them?", "Do I need admin rights for {t}?",
    "Can my team use {t} in the sandbox?", "Is {t} covered by the SLA?", "How secure is {t}?",
    "Any limits for {t} on the Starter plan?", "Where do I report a problem with {t}?",
    "Quick one: {t}?",
)


def support_questions(count: int, seed: int = 0) -> list[str]:
    """`count` distinct questions, shuffled by `seed` (at most len(TOPICS) * len(TEMPLATES))."""
    pairs = list(itertools.product(TEMPLATES, TOPICS))
    if count > len(pairs):
        raise ValueError(f"only {len(pairs)} distinct questions")
    random.Random(seed).shuffle(pairs)
    return [template.format(t=topic) for template, topic in pairs[:count]]


def clustered_scores(n: int, seed: int = 0, centre: float = 0.52, spread: float = 0.01) -> list[float]:
    """Scores packed tightly far from the training mix, as short support questions score."""
    return [float(x) for x in np.clip(np.random.default_rng(seed).normal(centre, spread, n), 0.0, 1.0)]
