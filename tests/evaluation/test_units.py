"""The evaluation's pure parts: scores, paired bootstrap, cost-quality curve, verdict, journal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from gateway.economics.breakeven import Investment
from gateway.evaluation.bootstrap import Interval, paired_difference
from gateway.evaluation.call import PaidCall, parse_calls
from gateway.evaluation.curve import CurvePoint, Scores, cost_quality_curve
from gateway.evaluation.dataset import DatasetError, ResponseLog, load_examples
from gateway.evaluation.recommendation import Measured, recommend
from gateway.evaluation.scoring import exact_match, json_conformance, normalise, token_f1


def test_exact_match_and_f1_follow_squad_normalisation() -> None:
    assert normalise("The  Growth plan, costs $349!") == "growth plan costs 349"
    assert exact_match("An Annual plan.", "annual PLAN") == 1.0
    assert exact_match("annual plans", "annual plan") == 0.0
    # 2 common words of 4 answered and 3 expected: precision 1/2, recall 2/3, F1 = 4/7.
    assert token_f1("growth costs three hundred", "the growth costs 349") == pytest.approx(4 / 7)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0 and token_f1("a b", "c d") == 0.0
    assert token_f1("yes yes", "yes") == pytest.approx(2 / 3)  # counts clip: one common "yes"


def test_json_conformance() -> None:
    schema = {"type": "object", "required": ["plan"], "properties": {"plan": {"type": "string"}}}
    assert json_conformance('{"plan": "Growth"}', schema) == 1.0
    assert json_conformance('{"plan": 3}', schema) == 0.0
    assert json_conformance("Growth", schema) == 0.0


def test_paired_bootstrap_is_paired_seeded_and_calibrated() -> None:
    rng = np.random.default_rng(7)
    hardness = rng.normal(0, 1, 400)  # shared per example: pairing should cancel it
    a = hardness + rng.normal(0, 0.1, 400)
    b = hardness + 0.3 + rng.normal(0, 0.1, 400)
    interval = paired_difference(a, b, seed=3)
    assert interval == paired_difference(a, b, seed=3)
    assert interval.observed == pytest.approx(float(np.mean(b) - np.mean(a)))
    assert interval.low < 0.3 < interval.high
    standard_error = float(np.std(b - a, ddof=1) / np.sqrt(400))
    assert interval.high - interval.low == pytest.approx(2 * 1.96 * standard_error, rel=0.15)
    assert interval.high - interval.low < 0.1  # unpaired, the shared hardness would make it ~0.28 wide
    same = paired_difference([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])
    assert (same.observed, same.low, same.high) == pytest.approx((0.5, 0.5, 0.5))
    p95 = paired_difference(list(range(100)), [v + 10 for v in range(100)], percentile=95)
    assert p95.observed == pytest.approx(10.0)
    with pytest.raises(ValueError):
        paired_difference([1.0], [1.0, 2.0])


def test_curve_sends_the_top_scored_share_to_the_prompted_arm() -> None:
    scores = Scores("fast", (0.9, 0.1, None, 0.5), "prompted", {0.0: 1.0, 0.5: 0.6, 1.0: 0.0})
    quality = {"prompted": [1.0, 1.0, 1.0, 1.0], "fine_tuned": [0.0, 1.0, 0.0, 0.0]}
    cost = {"prompted": [10.0, 10.0, 10.0, 10.0], "fine_tuned": [1.0, 1.0, 1.0, 1.0]}
    none, half, everything = cost_quality_curve(scores, quality, cost, (0.0, 0.5, 1.0))
    # share 0: only the unjudged example (low_confidence prompted) goes to the prompted arm.
    assert (none.prompted_examples, none.accuracy, none.cost_per_query_usd) == (1, 0.5, 13 / 4)
    # share 0.5: round(0.5 * 3 judged) = 2, the scores 0.9 and 0.5, plus the unjudged one.
    assert (half.prompted_examples, half.accuracy, half.cost_per_query_usd) == (3, 1.0, 31 / 4)
    assert (everything.prompted_examples, everything.accuracy, everything.cost_per_query_usd) == (4, 1.0, 10.0)
    assert half.threshold == 0.6


def _point(share: float, accuracy: float, cost: float) -> CurvePoint:
    return CurvePoint(share, 0.5, 0, accuracy, cost)


CURVE = [_point(0.0, 0.80, 0.001), _point(0.5, 0.89, 0.005), _point(1.0, 0.90, 0.01)]
HIGH_VOLUME = Investment(monthly_volume=500_000, upfront=12_000)


def _gap(low: float, high: float, observed: float = -0.1) -> Interval:
    return Interval(observed, low, high, 0.95, 100)


def test_verdicts_follow_the_guide() -> None:
    # As good as prompting within the tolerance: only the hybrid point qualifies, and it pays back fast.
    hybrid = recommend(CURVE, _gap(-0.15, -0.05), metric="f1", investment=HIGH_VOLUME)
    assert (hybrid.verdict, hybrid.strong_share, hybrid.cases["scale_optimisation"]) == ("hybrid", 0.5, True)
    assert hybrid.break_even is not None
    assert hybrid.break_even.months_to_break_even == pytest.approx(12_000 / (500_000 * 0.005))
    # Same numbers at 10K queries/month: 12,000 / 50 = 240 months, beyond the horizon.
    low = recommend(CURVE, _gap(-0.15, -0.05), metric="f1", investment=Investment(10_000, 12_000))
    assert (low.verdict, low.strong_share, any(low.cases.values())) == ("prompting", 1.0, False)
    # A loose requirement prompting meets: the fine-tune alone meets it too and is cheapest.
    loose = recommend(CURVE, _gap(-0.15, -0.05), metric="f1", investment=HIGH_VOLUME, required_accuracy=0.8)
    assert loose.verdict == "fine_tuned"
    # Critical accuracy: prompting misses 0.95, the fine-tune reaches it, whatever the break-even.
    curve = [_point(0.0, 0.97, 0.001), _point(0.5, 0.96, 0.005), _point(1.0, 0.94, 0.01)]
    critical = recommend(curve, _gap(0.01, 0.05, 0.03), metric="exact_match", required_accuracy=0.95,
                         investment=Investment(1_000, 12_000))
    assert critical.verdict == "fine_tuned" and critical.cases["critical_accuracy"]
    assert not critical.cases["scale_optimisation"]
    # Nothing reaches 0.99.
    neither = recommend(curve, _gap(0.01, 0.05), metric="exact_match", required_accuracy=0.99,
                        investment=HIGH_VOLUME)
    assert (neither.verdict, neither.strong_share) == ("neither", 0.0)
    # Style: declared, and the fine-tune measurably better, so the bar becomes its accuracy.
    style_curve = [_point(0.0, 0.9, 0.001), _point(0.5, 0.7, 0.005), _point(1.0, 0.6, 0.01)]
    style = recommend(style_curve, _gap(0.2, 0.4, 0.3), metric="similarity", style_task=True,
                      investment=Investment(1_000, 12_000))
    assert style.verdict == "fine_tuned" and style.cases["style_replication"] and style.bar == pytest.approx(0.88)
    # Not declared a style task: the same cheaper, better fine-tune needs to pay back, and at 1K/month it does not.
    assert recommend(style_curve, _gap(0.2, 0.4, 0.3), metric="similarity",
                     investment=Investment(1_000, 12_000)).verdict == "prompting"


def test_the_strategy_is_one_more_option_weighed_in_the_guides_order() -> None:
    gap = _gap(-0.15, -0.05)
    # Only the hybrid point (0.89 at $0.005) clears "as good as prompting" on the curve; a cascade at 0.9 for
    # $0.002 clears it more cheaply, and repays 12,000 at 500K queries/month in 12,000 / (500,000 * 0.008).
    cascade = Measured("cascade", 0.90, 0.002)
    chosen = recommend(CURVE, gap, metric="f1", investment=HIGH_VOLUME, strategy=cascade)
    assert (chosen.verdict, chosen.strong_share, chosen.chosen) == ("strategy", None, cascade)
    assert chosen.cases["scale_optimisation"] and chosen.break_even is not None
    assert chosen.break_even.months_to_break_even == pytest.approx(12_000 / (500_000 * 0.008))
    assert chosen.headline.startswith("Cascade (the route's strategy): f1 0.900")
    assert chosen.as_json()["chosen"] == {"strategy": "cascade", "strong_share": None, "accuracy": 0.9,
                                          "cost_per_query_usd": 0.002}
    # Every option, with its own break-even against prompting alone.
    options = {o.kind: o for o in chosen.options}
    assert list(options) == ["prompting", "fine_tuned", "hybrid", "strategy"]
    assert options["prompting"].break_even is None and options["hybrid"].candidate == CURVE[1]
    assert [o.clears_bar for o in chosen.options] == [True, False, True, True]
    for kind, cost in (("fine_tuned", 0.001), ("hybrid", 0.005), ("strategy", 0.002)):
        be = options[kind].break_even
        assert be is not None and be.months_to_break_even == pytest.approx(12_000 / (500_000 * (0.01 - cost)))
    # Below the bar it is weighed, not chosen: the hybrid point is.
    below = recommend(CURVE, gap, metric="f1", investment=HIGH_VOLUME, strategy=Measured("cascade", 0.85, 0.002))
    assert (below.verdict, below.strong_share) == ("hybrid", 0.5) and not below.options[-1].clears_bar
    # Clearing the bar but dearer than the hybrid point: the hybrid point.
    dear = recommend(CURVE, gap, metric="f1", investment=HIGH_VOLUME, strategy=Measured("cascade", 0.95, 0.006))
    assert dear.verdict == "hybrid"
    # A tie on cost and accuracy goes to the curve point: fewer moving parts.
    tie = recommend(CURVE, gap, metric="f1", investment=HIGH_VOLUME, strategy=Measured("ensemble", 0.89, 0.005))
    assert tie.verdict == "hybrid"
    # Cheapest and good enough, but at 10K queries/month it repays 12,000 in 150 months: prompting suffices.
    slow = recommend(CURVE, gap, metric="f1", investment=Investment(10_000, 12_000), strategy=cascade)
    assert (slow.verdict, slow.chosen, any(slow.cases.values())) == ("prompting", CURVE[2], False)
    assert slow.break_even is not None and slow.break_even.months_to_break_even == pytest.approx(150)
    # A requirement prompting misses that only the strategy meets: critical accuracy, whatever the break-even.
    critical = recommend(CURVE, gap, metric="f1", investment=Investment(1_000, 12_000), required_accuracy=0.92,
                         strategy=Measured("ensemble", 0.93, 0.012))
    assert critical.verdict == "strategy" and critical.cases["critical_accuracy"]
    assert not critical.cases["scale_optimisation"]
    # Nothing reaches 0.99; the most accurate option named is the strategy's.
    neither = recommend(CURVE, gap, metric="f1", investment=HIGH_VOLUME, required_accuracy=0.99,
                        strategy=Measured("ensemble", 0.95, 0.012))
    assert (neither.verdict, neither.strong_share, neither.chosen.accuracy) == ("neither", None, 0.95)


def test_verdict_needs_both_ends_of_the_curve() -> None:
    with pytest.raises(ValueError, match="two ends"):
        recommend(CURVE[1:], _gap(0, 0), metric="f1", investment=HIGH_VOLUME)


def _write(path: Path, *lines: object) -> Path:
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


def test_dataset_errors_name_the_line(tmp_path: Path) -> None:
    good = {"messages": [{"role": "user", "content": "hi"}], "expected": "hello"}
    path = _write(tmp_path / "set.jsonl", good, {**good, "expected": 3})
    with pytest.raises(DatasetError, match=r"set.jsonl:2: expected must be a string"):
        load_examples(path)
    with pytest.raises(DatasetError, match=r"set.jsonl:1: unknown field\(s\) answer"):
        load_examples(_write(path, {**good, "answer": "x"}))
    with pytest.raises(DatasetError, match="no examples"):
        load_examples(_write(path))


def test_journal_drops_a_torn_line_and_refuses_another_test_set(tmp_path: Path) -> None:
    good = {"messages": [{"role": "user", "content": "hi"}], "expected": "hello", "metadata": {"id": "greet"}}
    examples = load_examples(_write(tmp_path / "set.jsonl", good))
    assert examples[0].id == "greet"
    journal = tmp_path / "responses.jsonl"
    with ResponseLog(journal, examples) as log:
        log.append({"key": "0:prompted", "example": 0, "arm": "prompted", "fingerprint": examples[0].fingerprint})
    with journal.open("ab") as file:
        file.write(b'{"key": "0:fine_tuned", "exa')  # a crash mid-write
    log = ResponseLog(journal, examples)
    assert log.done(0, "prompted") and not log.done(0, "fine_tuned")
    assert journal.read_bytes().count(b"\n") == 1 and journal.read_bytes().endswith(b"}\n")
    other = load_examples(_write(tmp_path / "other.jsonl", {**good, "expected": "bye"}))
    with pytest.raises(DatasetError, match="does not match this test set"):
        ResponseLog(journal, other)


def test_calls_list_is_read_as_the_gateway_writes_it() -> None:
    calls = parse_calls('fine_tuned;target="support-ft";cost="0.00001230";rejected="reject", '
                        'prompted;target="gpt-4o";cost="unknown"')
    assert calls == (PaidCall("fine_tuned", "support-ft", 0.0000123, "reject"), PaidCall("prompted", "gpt-4o", None, ""))
    assert parse_calls("") == ()
