"""Experiment statistics agree with an independent computation (scipy) and say plainly what they mean.

scipy is a test-only dependency: the reference the gateway's own t distribution is checked against.
"""

from __future__ import annotations

import json
import math
import statistics as stdlib_statistics

import numpy as np
import pytest
from scipy import special, stats

from gateway.cli.experiments import experiment_text
from policies.experiments.statistics import (
    NOT_ENOUGH_DATA,
    ExperimentReport,
    Observation,
    mean_sample_size,
    proportion_sample_size,
    regularised_beta,
    report,
    t_cdf,
    t_quantile,
    t_two_sided_p,
    wilson_interval,
)

TOL = 1e-6


def scored(variant: str, scores: list[float], *, crossed: bool = False) -> list[Observation]:
    return [Observation(variant, None, float(s), 100.0, None, crossed) for s in scores]


def judged(variant: str, successes: int, trials: int, *, crossed: bool = False) -> list[Observation]:
    return [Observation(variant, i < successes, None, 100.0, None, crossed) for i in range(trials)]


def close(a: float | None, b: float) -> bool:
    """Within 1e-6 absolutely, or relatively for large magnitudes."""
    assert a is not None
    return math.isclose(a, b, rel_tol=TOL, abs_tol=TOL)


WELCH_SETS = [
    ([3, 4, 5, 4, 3, 5, 4], [4, 5, 5, 4, 5, 5, 4, 5, 3, 5]),
    ([1, 2, 3, 4, 5], [2, 4, 6, 8, 10, 12]),
    ([10.1, 9.8, 10.0, 10.2], [8, 14, 11, 15, 9, 13, 12, 16]),
    ([0.2, 0.9], [0.4, 0.5, 0.55]),
]
_rng = np.random.default_rng(20240601)
WELCH_SETS += [
    (list(_rng.normal(mu1, sd1, n1)), list(_rng.normal(mu2, sd2, n2)))
    for (n1, mu1, sd1), (n2, mu2, sd2) in [
        ((2, 0.0, 1.0), (3, 1.0, 2.0)),
        ((5, 3.5, 0.5), (40, 3.8, 1.5)),
        ((30, 0.0, 1.0), (31, 0.4, 1.0)),
        ((200, 4.0, 0.7), (17, 3.6, 2.5)),
        ((1000, 0.50, 0.2), (800, 0.52, 0.3)),
    ]
]


@pytest.mark.parametrize(("control", "variant"), WELCH_SETS)
def test_welch_matches_scipy(control: list[float], variant: list[float]) -> None:
    result = report(["A", "B"], scored("A", control) + scored("B", variant)).comparisons[0].score
    reference = stats.ttest_ind(variant, control, equal_var=False)
    interval = reference.confidence_interval(0.95)
    assert close(result.statistic, reference.statistic)
    assert close(result.p_value, reference.pvalue)
    assert close(result.df, reference.df)
    assert close(result.difference, float(np.mean(variant) - np.mean(control)))
    assert close(result.ci_low, interval.low)
    assert close(result.ci_high, interval.high)
    assert (result.n_control, result.n_variant) == (len(control), len(variant))


Z_SETS = [(45, 100, 60, 100), (3, 10, 9, 12), (180, 1000, 150, 900), (1, 2, 1, 3), (0, 50, 5, 60),
          (499, 500, 480, 500), (5, 10, 5, 10)]
Z_SETS += [(int(_rng.binomial(n1, 0.3)), int(n1), int(_rng.binomial(n2, 0.35)), int(n2))
           for n1, n2 in _rng.integers(20, 3000, size=(5, 2))]


@pytest.mark.parametrize(("s1", "n1", "s2", "n2"), Z_SETS)
def test_two_proportion_z_test_matches_scipy(s1: int, n1: int, s2: int, n2: int) -> None:
    result = report(["A", "B"], judged("A", s1, n1) + judged("B", s2, n2)).comparisons[0].success
    p1, p2, pooled = s1 / n1, s2 / n2, (s1 + s2) / (n1 + n2)
    z = (p2 - p1) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert close(result.statistic, z)
    assert close(result.p_value, 2 * stats.norm.sf(abs(z)))
    # a second, formula-free reference: the pooled z-test squared is Pearson's chi-square on the 2x2 table
    chi2 = stats.chi2_contingency([[s1, n1 - s1], [s2, n2 - s2]], correction=False)
    assert close(result.statistic**2, chi2.statistic)  # type: ignore[operator]
    assert close(result.p_value, chi2.pvalue)
    half = stats.norm.ppf(0.975) * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    assert close(result.ci_low, p2 - p1 - half)
    assert close(result.ci_high, p2 - p1 + half)


@pytest.mark.parametrize("df", [0.7, 1, 2, 3.3, 9, 27.8, 150, 4_000, 1e6])
def test_t_distribution_matches_scipy(df: float) -> None:
    for t in [0.0, 1e-5, 0.3, 1.0, 1.96, 2.6, 4.0, 9.0, 40.0]:
        assert close(t_two_sided_p(t, df), 2 * stats.t.sf(t, df))
        assert close(t_cdf(-t, df), stats.t.cdf(-t, df))
        assert close(t_cdf(t, df), stats.t.cdf(t, df))
    for q in [0.001, 0.025, 0.3, 0.5, 0.8, 0.95, 0.975, 0.999]:
        assert close(t_quantile(q, df), stats.t.ppf(q, df))


def test_incomplete_beta_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    for a, b, x in zip(rng.uniform(0.05, 300, 400), rng.uniform(0.05, 300, 400), rng.random(400), strict=True):
        assert math.isclose(regularised_beta(a, b, x), special.betainc(a, b, x), abs_tol=1e-10)
    assert regularised_beta(2, 3, 0.0) == 0.0
    assert regularised_beta(2, 3, 1.0) == 1.0


@pytest.mark.parametrize(("successes", "trials"), [(0, 10), (10, 10), (7, 20), (500, 1000), (1, 1), (3, 2000)])
@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_wilson_interval_matches_the_formula_and_scipy(successes: int, trials: int, confidence: float) -> None:
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    low, high = wilson_interval(successes, trials, confidence=confidence)
    assert close(low, centre - half)
    assert close(high, centre + half)
    reference = stats.binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="wilson")
    assert close(low, reference.low)
    assert close(high, reference.high)


def test_variant_summary_intervals_percentiles_and_cost() -> None:
    scores = [3.0, 4.5, 4.0, 2.5, 5.0, 4.0]
    latencies = [120.0, 80.0, 300.0, 95.0, 2000.0, 150.0, 110.0]
    observations = [Observation("A", i < 5, scores[i] if i < len(scores) else None, latency,
                                0.002 if i % 2 == 0 else None) for i, latency in enumerate(latencies)]
    summary = report(["A", "B"], observations).variants[0]
    assert (summary.n, summary.n_feedback, summary.priced) == (7, 7, 4)
    assert summary.success is not None and summary.score is not None
    assert (summary.success.successes, summary.success.trials) == (5, 7)
    assert (summary.success.ci_low, summary.success.ci_high) == wilson_interval(5, 7)
    low, high = stats.t.interval(0.95, len(scores) - 1, loc=np.mean(scores), scale=stats.sem(scores))
    assert close(summary.score.mean, float(np.mean(scores)))
    assert close(summary.score.ci_low, low)
    assert close(summary.score.ci_high, high)
    cuts = stdlib_statistics.quantiles(latencies, n=100, method="inclusive")
    assert close(summary.latency_p50_ms, cuts[49])
    assert close(summary.latency_p95_ms, cuts[94])
    assert close(summary.cost_per_request_usd, 0.002)
    empty = report(["A", "B"], observations).variants[1]
    assert (empty.n, empty.success, empty.score, empty.latency_p50_ms, empty.cost_per_request_usd) == (
        0, None, None, None, None)


def test_sample_size_formulas_against_hand_computed_examples() -> None:
    # 50% vs 60%, alpha 0.05, power 0.8: z = 1.959964, 0.841621; pbar = 0.55
    # (1.959964 * sqrt(2 * 0.55 * 0.45) + 0.841621 * sqrt(0.25 + 0.24))^2 / 0.1^2
    # = (1.378957 + 0.589135)^2 / 0.01 = 387.34 -> 388 per variant
    assert proportion_sample_size(0.5, 0.6) == 388
    assert proportion_sample_size(0.6, 0.5) == 388
    assert proportion_sample_size(0.3, 0.3) is None
    # sd 1 on both sides, difference 0.5: (1.959964 + 0.841621)^2 * 2 / 0.25 = 62.79 -> 63
    assert mean_sample_size(1.0, 1.0, 0.5) == 63
    # alpha 0.01, power 0.9, sd 2, difference 1: (2.575829 + 1.281552)^2 * 8 / 1 = 119.03 -> 120
    assert mean_sample_size(2.0, 2.0, 1.0, alpha=0.01, power=0.9) == 120
    assert mean_sample_size(1.0, 1.0, 0.0) is None


def test_verdicts_name_the_winner_with_its_p_value() -> None:
    result = report(["A", "B"], judged("A", 40, 100) + judged("B", 60, 100)).comparisons[0].success
    assert result.p_value is not None and result.p_value < 0.05
    assert result.verdict == f"B wins on success rate (p={result.p_value:.3f})"
    result = report(["A", "B"], judged("A", 60, 100) + judged("B", 40, 100)).comparisons[0].success
    assert result.verdict.startswith("A wins on success rate (p=0.00")
    scores = report(["A", "B"], scored("A", [1, 2, 1, 2, 1] * 20) + scored("B", [3, 2, 3, 2, 3] * 20))
    assert scores.comparisons[0].score.verdict == "B wins on mean score (p<0.001)"


def test_undecided_verdict_says_how_many_more_requests() -> None:
    result = report(["A", "B"], judged("A", 50, 100) + judged("B", 66, 120)).comparisons[0].success
    required = proportion_sample_size(0.5, 0.55)
    assert required is not None and result.required_per_variant == required
    assert result.verdict == (f"no significant difference yet: about {required - 100} more requests with feedback "
                              "per variant needed to detect the observed difference at 80% power")
    level = report(["A", "B"], judged("A", 5, 10) + judged("B", 10, 20)).comparisons[0].success
    assert level.verdict == "no significant difference yet: the variants are level so far"
    assert level.statistic == 0.0 and level.p_value == 1.0
    # tiny samples: the normal-theory size is reached, the t-test with 2 df is not yet convinced
    edge = report(["A", "B"], scored("A", [0, 1]) + scored("B", [2.2, 3.2])).comparisons[0].score
    assert edge.required_per_variant == 2 and edge.p_value is not None and edge.p_value > 0.05
    assert edge.verdict.startswith("no significant difference yet (p=0.0")


def test_not_enough_data_and_degenerate_samples() -> None:
    comparison = report(["A", "B"], judged("A", 1, 2) + judged("B", 1, 1) + scored("A", [1.0])).comparisons[0]
    assert comparison.success.verdict == NOT_ENOUGH_DATA and comparison.success.p_value is None
    assert comparison.score.verdict == NOT_ENOUGH_DATA and comparison.score.n_control == 1
    all_good = report(["A", "B"], judged("A", 10, 10) + judged("B", 20, 20)).comparisons[0].success
    assert all_good.statistic is None and all_good.verdict.endswith("level so far")
    constant = report(["A", "B"], scored("A", [3, 3, 3]) + scored("B", [4, 4])).comparisons[0].score
    assert constant.statistic is None and constant.difference == 1.0
    assert constant.verdict == "cannot test: scores do not vary within either variant"


def test_crossed_observations_are_excluded_and_counted() -> None:
    clean = judged("A", 40, 100) + judged("B", 60, 100) + scored("A", [1, 2, 3]) + scored("B", [2, 3, 4])
    noise = judged("A", 0, 7, crossed=True) + judged("B", 9, 9, crossed=True) + scored("B", [99.0], crossed=True)
    unknown = judged("retired", 3, 5)
    with_noise = report(["A", "B"], noise + clean + unknown)
    without = report(["A", "B"], clean)
    assert [v.excluded_crossed for v in with_noise.variants] == [7, 10]
    assert [v.n for v in with_noise.variants] == [103, 103]
    assert with_noise.comparisons == without.comparisons
    assert with_noise.ignored_unknown == 5
    assert [(v.n, v.success, v.score) for v in with_noise.variants] == [
        (v.n, v.success, v.score) for v in without.variants]


def test_three_variants_compare_each_with_the_control() -> None:
    result = report(["control", "b", "c"], judged("control", 30, 60) + judged("b", 35, 60) + judged("c", 50, 60))
    assert [(c.control, c.variant) for c in result.comparisons] == [("control", "b"), ("control", "c")]
    assert result.comparisons[1].success.verdict.startswith("c wins on success rate")


def test_alpha_sets_every_interval_level() -> None:
    data = judged("A", 40, 100) + judged("B", 52, 100) + scored("A", [1, 2, 3, 4]) + scored("B", [2, 3, 5, 6, 7])
    strict = report(["A", "B"], data, alpha=0.01, power=0.9)
    assert strict.variants[0].success is not None
    assert (strict.variants[0].success.ci_low, strict.variants[0].success.ci_high) == pytest.approx(
        wilson_interval(40, 100, confidence=0.99))
    interval = stats.ttest_ind([2, 3, 5, 6, 7], [1, 2, 3, 4], equal_var=False).confidence_interval(0.99)
    assert close(strict.comparisons[0].score.ci_low, interval.low)
    assert close(strict.comparisons[0].score.ci_high, interval.high)
    assert "at 90% power" in strict.comparisons[0].success.verdict


def test_as_dict_is_json_ready_and_table_renders() -> None:
    data = (judged("A", 40, 100) + judged("B", 60, 100) + scored("A", [1, 2, 3]) + scored("B", [2, 3, 5])
            + judged("B", 1, 2, crossed=True) + judged("gone", 1, 1))
    result = report(["A", "B"], data)
    as_dict = result.as_dict()
    assert json.loads(json.dumps(as_dict, allow_nan=False)) == as_dict
    assert as_dict["control"] == "A" and [v["name"] for v in as_dict["variants"]] == ["A", "B"]
    assert as_dict["comparisons"][0]["success"]["verdict"].startswith("B wins on success rate")
    table = experiment_text(result)
    lines = table.splitlines()
    assert lines[0].startswith("variant") and "success (95% CI)" in lines[0]
    assert lines[1].split()[:4] == ["A", "103", "0", "103"]
    assert lines[2].split()[:4] == ["B", "103", "2", "103"]
    assert "B vs A (control)" in table and "-> B wins on success rate" in table
    assert "1 observations of variants not in this experiment were ignored" in table
    lonely = experiment_text(report(["A", "B"], judged("A", 1, 1)))
    assert "not enough data" in lonely


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one variant"):
        report([], [])
    with pytest.raises(ValueError, match="repeat"):
        report(["A", "A"], [])
    with pytest.raises(ValueError, match="alpha and power"):
        report(["A", "B"], [], alpha=1.5)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    with pytest.raises(ValueError):
        t_quantile(1.0, 5)
    assert isinstance(report(["A"], judged("A", 1, 2)), ExperimentReport)
