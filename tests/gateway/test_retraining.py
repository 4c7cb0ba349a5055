"""When a fine-tune is due for retraining: its target's age against the route's cadence, and the quality
figures the Prometheus alert reads."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.economics.observed import SECONDS_PER_MONTH
from gateway.economics.retraining import retraining_view
from policies import load_policies

POLICY = """
version: 1
targets:
  big: {provider: openai, model: gpt-4o}
  dated: {provider: openai, model: "ft:gpt-4o-mini:acme::a", trained_at: 2026-09-01}
  fresh: {provider: openai, model: "ft:gpt-4o-mini:acme::b", trained_at: "2026-11-20T12:00:00+01:00"}
routes:
  due:
    arms: {prompted: {target: big}, fine_tuned: {target: dated}}
    economics: {upfront_usd: 1, projected_monthly_queries: 1, retraining_every_months: 3, quality_baseline: 0.8,
                quality_drop_alert: 0.1}
  not-due:
    arms: {prompted: {target: big}, fine_tuned: {target: fresh}}
    economics: {upfront_usd: 1, projected_monthly_queries: 1, retraining_every_months: 3}
  no-cadence:
    arms: {prompted: {target: big}, fine_tuned: {target: dated}}
    economics: {upfront_usd: 1, projected_monthly_queries: 1}
  no-economics:
    arms: {prompted: {target: big}, fine_tuned: {target: dated}}
"""


def test_age_against_the_cadence_and_the_quality_figures(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    now = datetime(2026, 12, 4, tzinfo=UTC)
    view = retraining_view(load_policies(tmp_path), now)
    assert set(view) == {"due", "not-due", "no-cadence"}  # a route without economics has no cadence to keep
    age = (now - datetime(2026, 9, 1, tzinfo=UTC)).total_seconds() / SECONDS_PER_MONTH
    assert view["due"] == {"quality_drop_alert": 0.1, "quality_baseline": 0.8, "model_age_months": age,
                           "every_months": 3.0, "due": 1.0}  # a bare date is midnight UTC: 94 days, over 3 months
    assert view["not-due"]["due"] == 0.0
    assert view["not-due"]["model_age_months"] == pytest.approx(
        (now - datetime(2026, 11, 20, 11, tzinfo=UTC)).total_seconds() / SECONDS_PER_MONTH)
    assert "due" not in view["no-cadence"] and "quality_baseline" not in view["no-cadence"]
