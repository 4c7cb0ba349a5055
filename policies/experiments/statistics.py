"""The experiment report: per-variant summaries and control-versus-variant tests.

The first variant is the control; every other variant is compared with it on two
outcomes: success (a pooled two-proportion z-test) and score (Welch's t-test, which
does not assume equal variances, because a small tuned model and a large prompted one
rarely have the same spread). Requests that crossed variants through a fallback are
excluded, and counted, because they measure neither side cleanly.

The t distribution is computed here (regularised incomplete beta by Lentz's continued
fraction) rather than with scipy, to keep the runtime dependencies small; the tests
check it against scipy. Every interval uses the confidence level ``1 - alpha`` so an
interval excluding zero agrees with the test.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

_STANDARD_NORMAL = NormalDist()
_CF_EPSILON = 1e-15
_CF_MAX_TERMS = 100_000
_TINY = 1e-300
NOT_ENOUGH_DATA = "not enough data"


@dataclass(frozen=True)
class Observation:
    """One finished request of an experiment, with its feedback if any arrived."""

    variant: str
    success: bool | None
    score: float | None
    latency_ms: float
    cost_usd: float | None
    crossed: bool = False


@dataclass(frozen=True)
class Proportion:
    successes: int
    trials: int
    rate: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Mean:
    n: int
    mean: float
    sd: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class VariantSummary:
    """One variant's requests (crossed ones excluded) and what their feedback says."""

    name: str
    n: int
    n_feedback: int
    excluded_crossed: int
    success: Proportion | None
    score: Mean | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    cost_per_request_usd: float | None
    priced: int


@dataclass(frozen=True)
class TestResult:
    """One metric's test of a variant against the control; ``difference`` is variant minus control."""

    __test__ = False  # not a pytest test class, despite the name

    metric: Literal["success_rate", "mean_score"]
    method: str
    n_control: int
    n_variant: int
    statistic: float | None
    df: float | None
    p_value: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    required_per_variant: int | None
    verdict: str


@dataclass(frozen=True)
class Comparison:
    control: str
    variant: str
    success: TestResult
    score: TestResult


@dataclass(frozen=True)
class ExperimentReport:
    alpha: float
    power: float
    variants: tuple[VariantSummary, ...]
    comparisons: tuple[Comparison, ...]
    ignored_unknown: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain dicts, lists and finite numbers (None where undefined), ready for ``json.dumps``."""
        return {
            "alpha": self.alpha,
            "power": self.power,
            "control": self.variants[0].name,
            "variants": [asdict(summary) for summary in self.variants],
            "comparisons": [asdict(comparison) for comparison in self.comparisons],
            "ignored_unknown": self.ignored_unknown,
        }


def report(variants: Sequence[str], observations: Iterable[Observation], *, alpha: float = 0.05,
           power: float = 0.8) -> ExperimentReport:
    """Summarise each variant and compare the first (the control) with each of the others.

    Observations naming a variant not in ``variants`` (one removed from the policy since)
    are ignored and counted in ``ignored_unknown``.
    """
    names = list(variants)
    if not names:
        raise ValueError("an experiment report needs at least one variant")
    if len(set(names)) != len(names):
        raise ValueError(f"variant names repeat: {names}")
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must lie strictly between 0 and 1 (got {alpha}, {power})")
    kept: dict[str, list[Observation]] = {name: [] for name in names}
    crossed = dict.fromkeys(names, 0)
    ignored = 0
    for observation in observations:
        if observation.variant not in kept:
            ignored += 1
        elif observation.crossed:
            crossed[observation.variant] += 1
        else:
            kept[observation.variant].append(observation)
    summaries = tuple(_summarise(name, kept[name], crossed[name], alpha) for name in names)
    control = names[0]
    comparisons = tuple(_compare(control, kept[control], name, kept[name], alpha, power) for name in names[1:])
    return ExperimentReport(alpha, power, summaries, comparisons, ignored)


# --- interval and test maths, public so callers and tests can use them on their own -----------------


def wilson_interval(successes: int, trials: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval: unlike the Wald interval it stays inside [0, 1] and behaves near 0% and 100%."""
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials > 0 (got {successes}/{trials})")
    z = _STANDARD_NORMAL.inv_cdf(0.5 + confidence / 2)
    rate = successes / trials
    z2n = z * z / trials
    centre = (rate + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(rate * (1 - rate) / trials + z2n / (4 * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion_sample_size(p_control: float, p_variant: float, *, alpha: float = 0.05,
                           power: float = 0.8) -> int | None:
    """Requests with feedback per variant for a two-sided pooled z-test to detect this difference.

    n = (z_{1-a/2} sqrt(2 pbar qbar) + z_{power} sqrt(p1 q1 + p2 q2))^2 / (p1 - p2)^2, the
    textbook formula without continuity correction; None when the rates are equal.
    """
    difference = p_variant - p_control
    if difference == 0:
        return None
    z_alpha, z_power = _STANDARD_NORMAL.inv_cdf(1 - alpha / 2), _STANDARD_NORMAL.inv_cdf(power)
    pooled = (p_control + p_variant) / 2
    spread = math.sqrt(p_control * (1 - p_control) + p_variant * (1 - p_variant))
    root = z_alpha * math.sqrt(2 * pooled * (1 - pooled)) + z_power * spread
    return _ceil(root * root / (difference * difference))


def mean_sample_size(sd_control: float, sd_variant: float, difference: float, *, alpha: float = 0.05,
                     power: float = 0.8) -> int | None:
    """Scores per variant to detect ``difference`` two-sided: n = (z_{1-a/2} + z_{power})^2 (s1^2 + s2^2) / d^2."""
    if difference == 0:
        return None
    z_sum = _STANDARD_NORMAL.inv_cdf(1 - alpha / 2) + _STANDARD_NORMAL.inv_cdf(power)
    return _ceil(z_sum * z_sum * (sd_control**2 + sd_variant**2) / (difference * difference))


def normal_two_sided_p(z: float) -> float:
    """P(|Z| >= |z|), by erfc so tiny p-values keep their precision."""
    return math.erfc(abs(z) / math.sqrt(2))


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` (possibly fractional) degrees of freedom.

    Equal to I_x(df/2, 1/2) with x = df / (df + t^2); 1 - x is passed separately so that
    small t with large df loses no precision.
    """
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive (got {df})")
    t2 = t * t
    if math.isinf(t2):
        return 0.0
    return _regularised_beta(df / 2, 0.5, df / (df + t2), t2 / (df + t2))


def t_cdf(t: float, df: float) -> float:
    tail = t_two_sided_p(t, df) / 2
    return 1 - tail if t > 0 else tail


def t_quantile(q: float, df: float) -> float:
    """The t with P(T <= t) = q: safeguarded Newton on the two-sided tail, bisection when Newton strays."""
    if not 0 < q < 1:
        raise ValueError(f"quantile must lie strictly between 0 and 1 (got {q})")
    if q < 0.5:
        return -t_quantile(1 - q, df)
    if q == 0.5:
        return 0.0
    target = 2 * (1 - q)
    low, high = 0.0, max(1.0, _STANDARD_NORMAL.inv_cdf(q))
    while t_two_sided_p(high, df) > target:
        low, high = high, high * 2
    t = (low + high) / 2
    for _ in range(200):
        gap = t_two_sided_p(t, df) - target
        if gap > 0:
            low = t
        else:
            high = t
        slope = -2 * _t_density(t, df)
        step = t - gap / slope if slope else (low + high) / 2
        following = step if low < step < high else (low + high) / 2
        if abs(following - t) <= 1e-13 * t:
            return following
        t = following
    return t


def regularised_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularised incomplete beta function."""
    if not 0 <= x <= 1:
        raise ValueError(f"x must lie in [0, 1] (got {x})")
    return _regularised_beta(a, b, x, 1 - x)


# --- per-variant summaries ------------------------------------------------------------------------


def _summarise(name: str, observations: list[Observation], crossed: int, alpha: float) -> VariantSummary:
    outcomes = [o.success for o in observations if o.success is not None]
    scores = [o.score for o in observations if o.score is not None]
    costs = [o.cost_usd for o in observations if o.cost_usd is not None]
    latencies = [o.latency_ms for o in observations]
    p50 = p95 = None
    if latencies:
        p50, p95 = (float(value) for value in np.percentile(latencies, [50, 95]))
    return VariantSummary(
        name=name,
        n=len(observations),
        n_feedback=sum(o.success is not None or o.score is not None for o in observations),
        excluded_crossed=crossed,
        success=_proportion(sum(outcomes), len(outcomes), alpha) if outcomes else None,
        score=_mean(scores, alpha) if scores else None,
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        cost_per_request_usd=math.fsum(costs) / len(costs) if costs else None,
        priced=len(costs),
    )


def _proportion(successes: int, trials: int, alpha: float) -> Proportion:
    low, high = wilson_interval(successes, trials, confidence=1 - alpha)
    return Proportion(successes, trials, successes / trials, low, high)


def _mean(values: list[float], alpha: float) -> Mean:
    n, mean, variance = _moments(values)
    if n < 2:
        return Mean(n, mean, None, None, None)
    half = t_quantile(1 - alpha / 2, n - 1) * math.sqrt(variance / n)
    return Mean(n, mean, math.sqrt(variance), mean - half, mean + half)


def _moments(values: Sequence[float]) -> tuple[int, float, float]:
    """Count, mean and the unbiased (n - 1) variance, two-pass for accuracy."""
    n = len(values)
    mean = math.fsum(values) / n
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return n, mean, variance


# --- control versus variant ----------------------------------------------------------------------


def _compare(control: str, control_obs: list[Observation], variant: str, variant_obs: list[Observation],
             alpha: float, power: float) -> Comparison:
    names = (control, variant)
    success = _z_test([o.success for o in control_obs if o.success is not None],
                      [o.success for o in variant_obs if o.success is not None], names, alpha, power)
    score = _welch_test([o.score for o in control_obs if o.score is not None],
                        [o.score for o in variant_obs if o.score is not None], names, alpha, power)
    return Comparison(control, variant, success, score)


def _z_test(control: list[bool], variant: list[bool], names: tuple[str, str], alpha: float,
            power: float) -> TestResult:
    """Pooled two-proportion z-test; the difference's interval is the unpooled (Wald) one."""
    method = "two-proportion z-test (pooled)"
    n1, n2 = len(control), len(variant)
    if min(n1, n2) < 2:
        return _no_test("success_rate", method, n1, n2, NOT_ENOUGH_DATA)
    p1, p2 = sum(control) / n1, sum(variant) / n2
    difference = p2 - p1
    pooled = (sum(control) + sum(variant)) / (n1 + n2)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se_pooled == 0:  # both sides all successes, or all failures
        return _no_test("success_rate", method, n1, n2, "no significant difference yet: the variants are level so far",
                        difference=0.0)
    z = difference / se_pooled
    p_value = normal_two_sided_p(z)
    half = _STANDARD_NORMAL.inv_cdf(1 - alpha / 2) * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    required = proportion_sample_size(p1, p2, alpha=alpha, power=power)
    verdict = _verdict("success rate", names, p_value, difference, alpha, power, required, min(n1, n2))
    return TestResult("success_rate", method, n1, n2, z, None, p_value, difference, difference - half,
                      difference + half, required, verdict)


def _welch_test(control: list[float], variant: list[float], names: tuple[str, str], alpha: float,
                power: float) -> TestResult:
    """Welch's t-test with Welch-Satterthwaite degrees of freedom."""
    method = "Welch t-test"
    n1, n2 = len(control), len(variant)
    if min(n1, n2) < 2:
        return _no_test("mean_score", method, n1, n2, NOT_ENOUGH_DATA)
    _, mean1, var1 = _moments(control)
    _, mean2, var2 = _moments(variant)
    difference = mean2 - mean1
    share1, share2 = var1 / n1, var2 / n2
    se = math.sqrt(share1 + share2)
    if se == 0:
        verdict = ("no significant difference yet: the variants are level so far" if difference == 0
                   else "cannot test: scores do not vary within either variant")
        return _no_test("mean_score", method, n1, n2, verdict, difference=difference)
    df = (share1 + share2) ** 2 / (share1**2 / (n1 - 1) + share2**2 / (n2 - 1))
    t = difference / se
    p_value = t_two_sided_p(t, df)
    half = t_quantile(1 - alpha / 2, df) * se
    required = mean_sample_size(math.sqrt(var1), math.sqrt(var2), difference, alpha=alpha, power=power)
    verdict = _verdict("mean score", names, p_value, difference, alpha, power, required, min(n1, n2))
    return TestResult("mean_score", method, n1, n2, t, df, p_value, difference, difference - half,
                      difference + half, required, verdict)


def _no_test(metric: Literal["success_rate", "mean_score"], method: str, n1: int, n2: int, verdict: str,
             difference: float | None = None) -> TestResult:
    return TestResult(metric, method, n1, n2, None, None, None, difference, None, None, None, verdict)


def _verdict(label: str, names: tuple[str, str], p_value: float, difference: float, alpha: float, power: float,
             required: int | None, have: int) -> str:
    """One line a person can act on: who wins, or how much more data a decision needs."""
    if p_value < alpha:
        winner = names[1] if difference > 0 else names[0]
        return f"{winner} wins on {label} ({_p_text(p_value)})"
    if required is None:
        return "no significant difference yet: the variants are level so far"
    more = required - have
    if more > 0:
        return (f"no significant difference yet: about {more} more requests with feedback per variant "
                f"needed to detect the observed difference at {power:.0%} power")
    return (f"no significant difference yet ({_p_text(p_value)}), although the sample should detect the "
            f"observed difference at {power:.0%} power; keep collecting")


def _p_text(p_value: float) -> str:
    return "p<0.001" if p_value < 0.001 else f"p={p_value:.3f}"


# --- special functions -----------------------------------------------------------------------------


def _t_density(t: float, df: float) -> float:
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_norm - (df + 1) / 2 * math.log1p(t * t / df))


def _regularised_beta(a: float, b: float, x: float, y: float) -> float:
    """I_x(a, b) with y = 1 - x given by the caller, so neither end loses digits to cancellation.

    The continued fraction converges fast only for x < (a + 1) / (a + b + 2); beyond it the
    symmetry I_x(a, b) = 1 - I_{1-x}(b, a) is used (Numerical Recipes, 6.4).
    """
    if x <= 0:
        return 0.0
    if y <= 0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1 - math.exp(log_front) * _beta_fraction(b, a, y) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The incomplete beta continued fraction, evaluated by the modified Lentz method."""
    total, plus, minus = a + b, a + 1, a - 1
    c = 1.0
    d = _nonzero(1 - total * x / plus)
    d = 1 / d
    fraction = d
    for m in range(1, _CF_MAX_TERMS):
        m2 = 2 * m
        even = m * (b - m) * x / ((minus + m2) * (a + m2))
        d = 1 / _nonzero(1 + even * d)
        c = _nonzero(1 + even / c)
        fraction *= d * c
        odd = -(a + m) * (total + m) * x / ((a + m2) * (plus + m2))
        d = 1 / _nonzero(1 + odd * d)
        c = _nonzero(1 + odd / c)
        delta = d * c
        fraction *= delta
        if abs(delta - 1) < _CF_EPSILON:
            return fraction
    raise ArithmeticError(f"incomplete beta did not converge for a={a}, b={b}, x={x}")


def _nonzero(value: float) -> float:
    return value if abs(value) >= _TINY else _TINY


def _ceil(value: float) -> int:
    """Round up, but not over floating-point dust (62.000000001 needs 62, not 63)."""
    return math.ceil(value - 1e-9)
