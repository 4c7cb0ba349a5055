"""Break-even arithmetic and the ``breakeven`` subcommand.

Expected figures are computed here from the inputs (upfront / monthly savings),
never copied from the guide: the guide's own 10K figure is wrong.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from gateway.economics.breakeven import (
    DEFAULT_UPFRONT,
    FAST_PAYBACK_MONTHS,
    GUIDE_SCENARIOS,
    YEAR_MONTHS,
    Scenario,
    StatedMonths,
    TokenCost,
    break_even,
)

# The guide's inputs (volume, prompted $/month, fine-tuned $/month), $12,000 upfront; outputs are derived.
GUIDE_INPUTS = [(10_000, 300, 150), (50_000, 1_500, 250), (100_000, 3_000, 500), (500_000, 15_000, 2_500)]
GUIDE_UPFRONT = 12_000

def run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "breakeven", *argv],
                          capture_output=True, text=True, timeout=30, check=False)


def run_json(*argv: str) -> list[dict[str, Any]]:
    done = run_cli("--json", *argv)
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def test_guide_scenarios_hold_the_guides_inputs() -> None:
    assert [(g.scenario.volume, g.scenario.prompted_monthly, g.scenario.fine_tuned_monthly)
            for g in GUIDE_SCENARIOS] == GUIDE_INPUTS
    assert all(g.scenario.upfront == GUIDE_UPFRONT == DEFAULT_UPFRONT for g in GUIDE_SCENARIOS)


@pytest.mark.parametrize("guide", GUIDE_SCENARIOS, ids=lambda g: f"{g.scenario.volume:g}")
def test_break_even_is_upfront_over_monthly_savings(guide: Any) -> None:
    s = guide.scenario
    assert s.prompted_monthly is not None and s.fine_tuned_monthly is not None
    savings = s.prompted_monthly - s.fine_tuned_monthly
    result = break_even(s)
    assert result.savings_monthly == pytest.approx(savings)
    assert result.months_to_break_even == pytest.approx(s.upfront / savings)
    assert result.cumulative_savings_at_horizon == pytest.approx(savings * s.horizon_months - s.upfront)


def test_cli_json_defaults_reproduce_the_guide_computed_from_inputs() -> None:
    rows = run_json()
    expected_months = [GUIDE_UPFRONT / (prompted - fine_tuned) for _, prompted, fine_tuned in GUIDE_INPUTS]
    assert [(r["volume"], r["prompted_monthly"], r["fine_tuned_monthly"]) for r in rows] == GUIDE_INPUTS
    assert [r["months_to_break_even"] for r in rows] == pytest.approx(expected_months)
    assert [round(m, 2) for m in expected_months] == [80, 9.6, 4.8, 0.96]  # the figures the brief names
    assert {"savings_monthly", "verdict", "cumulative_savings_at_horizon"} <= rows[0].keys()


def test_discrepancy_note_only_for_the_10k_scenario() -> None:
    rows = run_json()
    volume, prompted, fine_tuned = GUIDE_INPUTS[0]
    assert [r["volume"] for r in rows if r["guide_note"]] == [volume]
    months = GUIDE_UPFRONT / (prompted - fine_tuned)
    table = run_cli().stdout
    assert "the guide says 40 months at 10,000 queries/month" in table
    assert f"12,000 / ({prompted} - {fine_tuned}) = {months:.1f} months" in table
    assert table.count("the guide says") == 1


def test_no_note_when_inputs_differ_from_the_guide() -> None:
    # Halving the upfront makes 10K break even at 40 months: the guide's inputs no longer apply.
    rows = run_json("--upfront", str(GUIDE_UPFRONT / 2))
    assert all(r["guide_note"] is None for r in rows)
    _, prompted, fine_tuned = GUIDE_INPUTS[0]
    assert rows[0]["months_to_break_even"] == pytest.approx(GUIDE_UPFRONT / 2 / (prompted - fine_tuned))


def test_stated_months_tolerate_rounding_only() -> None:
    assert StatedMonths(9).agrees_with(12_000 / 1_250)
    assert StatedMonths(5).agrees_with(12_000 / 2_500)
    assert StatedMonths(1, under=True).agrees_with(12_000 / 12_500)
    assert not StatedMonths(40).agrees_with(12_000 / 150)
    assert not StatedMonths(40).agrees_with(None)


def test_per_query_costs_scale_with_volume() -> None:
    volume, prompted_q, fine_tuned_q = 50_000, 0.03, 0.005
    result = break_even(Scenario(volume=volume, prompted_per_query=prompted_q, fine_tuned_per_query=fine_tuned_q))
    assert result.prompted_monthly == pytest.approx(volume * prompted_q)
    assert result.fine_tuned_monthly == pytest.approx(volume * fine_tuned_q)
    assert result.months_to_break_even == pytest.approx(DEFAULT_UPFRONT / (volume * (prompted_q - fine_tuned_q)))


def test_per_token_costs() -> None:
    big = TokenCost(input_per_million=2.5, output_per_million=10.0, tokens_in=1_800, tokens_out=300)
    small = TokenCost(input_per_million=0.3, output_per_million=1.2, tokens_in=400, tokens_out=300)
    volume = 200_000
    result = break_even(Scenario(volume=volume, prompted_tokens=big, fine_tuned_tokens=small))
    big_q = (1_800 * 2.5 + 300 * 10.0) / 1e6
    small_q = (400 * 0.3 + 300 * 1.2) / 1e6
    assert big.per_query == pytest.approx(big_q)
    assert result.prompted_monthly == pytest.approx(volume * big_q)
    assert result.fine_tuned_monthly == pytest.approx(volume * small_q)


def test_cli_per_token_and_per_query_mixed() -> None:
    volume, prompted_q = 200_000, 0.03
    rows = run_json("--volume", str(volume), "--prompted-per-query", str(prompted_q),
                    "--fine-tuned-input-per-m", "0.3", "--fine-tuned-output-per-m", "1.2",
                    "--fine-tuned-tokens-in", "400", "--fine-tuned-tokens-out", "300")
    fine_tuned = volume * (400 * 0.3 + 300 * 1.2) / 1e6
    assert rows[0]["prompted_monthly"] == pytest.approx(volume * prompted_q)
    assert rows[0]["fine_tuned_monthly"] == pytest.approx(fine_tuned)
    assert rows[0]["months_to_break_even"] == pytest.approx(DEFAULT_UPFRONT / (volume * prompted_q - fine_tuned))


def test_never_pays_off() -> None:
    result = break_even(Scenario(volume=1_000, prompted_monthly=100, fine_tuned_monthly=100, horizon_months=12))
    assert result.months_to_break_even is None
    assert result.verdict == "never pays off"
    assert result.cumulative_savings_at_horizon == pytest.approx(-DEFAULT_UPFRONT)
    rows = run_json("--volume", "1000", "--prompted-monthly", "100", "--fine-tuned-monthly", "120")
    assert rows[0]["months_to_break_even"] is None
    assert rows[0]["savings_monthly"] == pytest.approx(100 - 120)


def test_retraining_and_maintenance_are_amortised_monthly() -> None:
    prompted, inference, maintenance, retrain, every = 3_000.0, 1_000.0, 200.0, 3_000.0, 3.0
    scenario = Scenario(volume=100_000, prompted_monthly=prompted, fine_tuned_monthly=inference,
                        maintenance_monthly=maintenance, retraining_cost=retrain, retraining_every_months=every)
    fine_tuned = inference + maintenance + retrain / every
    result = break_even(scenario)
    assert result.fine_tuned_monthly == pytest.approx(fine_tuned)
    assert result.months_to_break_even == pytest.approx(DEFAULT_UPFRONT / (prompted - fine_tuned))
    rows = run_json("--volume", "100000", "--prompted-monthly", str(prompted), "--fine-tuned-monthly",
                    str(inference), "--maintenance-monthly", str(maintenance), "--retraining-cost", str(retrain),
                    "--retraining-every-months", str(every))
    assert rows[0]["fine_tuned_monthly"] == pytest.approx(fine_tuned)


@pytest.mark.parametrize(("months", "start"), [
    (0.5, "fine-tune: pays back in under 1 month"),
    (FAST_PAYBACK_MONTHS - 1.2, f"fine-tune: pays back in under {FAST_PAYBACK_MONTHS - 1} months"),
    (FAST_PAYBACK_MONTHS + 1, "pays off within a year"),
    (YEAR_MONTHS + 1, "marginal"),
    (30, "pays off after the horizon"),
])
def test_verdict_thresholds(months: float, start: str) -> None:
    savings = 1_000.0
    scenario = Scenario(volume=1, prompted_monthly=savings, fine_tuned_monthly=0, upfront=savings * months)
    assert break_even(scenario).verdict.startswith(start)


def test_scenario_refuses_ambiguous_or_missing_costs() -> None:
    with pytest.raises(ValueError, match="exactly one prompted cost"):
        Scenario(volume=1, prompted_monthly=1, prompted_per_query=1, fine_tuned_monthly=0)
    with pytest.raises(ValueError, match="exactly one fine_tuned cost"):
        Scenario(volume=1, prompted_monthly=1)
    with pytest.raises(ValueError, match="volume must be >= 0"):
        Scenario(volume=-1, prompted_monthly=1, fine_tuned_monthly=0)


@pytest.mark.parametrize(("argv", "message"), [
    (["--volume", "-5", "--prompted-monthly", "1", "--fine-tuned-monthly", "0"], "argument --volume: must be >= 0"),
    (["--volume", "10", "--volume", "20", "--prompted-monthly", "300", "--fine-tuned-monthly", "150",
      "--fine-tuned-monthly", "100"], "--prompted-monthly is paired with --volume"),
    (["--volume", "10", "--prompted-monthly", "300"], "no fine-tuned cost"),
    (["--volume", "10", "--prompted-monthly", "300", "--fine-tuned-per-query", "0.01",
      "--fine-tuned-monthly", "100"], "one way only"),
    (["--volume", "10", "--prompted-per-query", "0.03", "--fine-tuned-tokens-in", "400"],
     "missing --fine-tuned-input-per-m"),
    (["--prompted-monthly", "300", "--fine-tuned-monthly", "150"], "at least one --volume"),
    (["--retraining-cost", "3000"], "--retraining-cost needs --retraining-every-months"),
    (["--horizon-months", "0"], "argument --horizon-months: must be > 0"),
])
def test_bad_inputs_are_argparse_errors(argv: list[str], message: str) -> None:
    done = run_cli(*argv)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
