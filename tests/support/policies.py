"""Policy snippets several test modules share, for the fake upstream's `big` and `small` targets."""

from __future__ import annotations


def econ_route(projected_monthly_queries: int) -> str:
    """Route ``econ``: fine-tuned by default, arms overridable, a small fine-tuning investment to pay back."""
    return f"""
  econ:
    default_arm: fine_tuned
    allow_arm_override: true
    arms:
      prompted: {{target: big}}
      fine_tuned: {{target: small}}
    economics: {{upfront_usd: 0.5, maintenance_monthly_usd: 0.01, retraining_usd: 0.03,
                retraining_every_months: 3, projected_monthly_queries: {projected_monthly_queries}}}
"""
