"""``eval`` on a cascade route: the route unforced is the third arm, priced by every call it paid for.

A real gateway in process (and one at ``--url``) in front of the scripted fake upstream. The fine-tune
hedges on some examples, so the cascade escalates those to the prompted arm; the fake's log of what it
was asked is the independent record of what was paid, and the script says which examples escalate.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.cli.main import main
from tests.conftest import BIG_MODEL, GatewayFactory
from tests.support.fake_upstream import Action, FakeUpstream
from tests.support.servers import ServerThread
from tests.support.strategies import TARGETS, TUNED, price

CASCADE = TARGETS + """
  cascading:
    default_arm: fine_tuned
    strategy: {strategy}
    allow_arm_override: true
    {acceptors}
    arms:
      prompted: {{target: big, system_prompt: Be thorough.}}
      fine_tuned: {{target: tuned}}
"""
REJECT = 'acceptors: {reject: ["i\'?m not sure"]}'
GOOD, HEDGE, WRONG = "Refunds take five days.", "I'm not sure, sorry.", "Refunds take ten days."
# Long questions first in the classifier's order go to the prompted arm at any share; the fine-tune hedges on
# the short ones, so no routing share below 1 serves them all right, while the cascade escalates exactly those.
EXAMPLES = [
    ("Explain step by step how refunds are processed for annual plans, compare the card and invoice paths, "
     "and derive how long each takes in business days.", GOOD),
    ("refund?", HEDGE),
    ("Analyse the trade-offs between partial and full refunds for a 40-seat team on a monthly plan, with "
     "the proration arithmetic worked out for each billing day.", WRONG),
    ("hours?", HEDGE),
    ("Write a detailed comparison of refund timelines across the three payment providers, including "
     "chargebacks, disputes and the reconciliation steps finance must run.", GOOD),
    ("hi", HEDGE),
]
@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYBRID_GATEWAY_DATA_DIR", str(tmp_path / "var"))
    return tmp_path


@pytest.fixture
def cascade_policies(policy_dir: Path, fake_server: tuple[FakeUpstream, ServerThread]) -> Path:
    (policy_dir / "cascade.yaml").write_text(CASCADE.format(url=fake_server[1].url, strategy="cascade",
                                                            acceptors=REJECT))
    return policy_dir


def dataset(path: Path) -> Path:
    path.write_bytes(b"".join(orjson.dumps({"messages": [{"role": "user", "content": question}], "expected": GOOD})
                              + b"\n" for question, _ in EXAMPLES))
    return path


def script(fake: FakeUpstream, examples: range) -> None:
    """One call at a time, per example: the prompted arm forced, the fine-tune forced, then the route unforced
    (the fine-tune again, and the prompted arm when its answer hedges)."""
    for i in examples:
        tuned = EXAMPLES[i][1]
        fake.script_for(TUNED, Action(text=tuned), Action(text=tuned))
        fake.script_for(BIG_MODEL, *[Action(text=GOOD)] * (2 if tuned == HEDGE else 1))


def journal(out: Path) -> dict[str, dict[str, Any]]:
    lines = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    return {line["key"]: line for line in lines}


def arguments(policies: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "--data", str(data), "--route", "cascading", "--policies", str(policies), "--out", str(out),
            "--metric", "exact_match", "--concurrency", "1", "--no-progress", "--bootstrap-samples", "300",
            "--monthly-volume", "10000000", "--upfront", "100", *extra]


def test_a_cascade_route_is_replayed_priced_and_weighed(fake: FakeUpstream, cascade_policies: Path,
                                                        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, out = dataset(workdir / "set.jsonl"), workdir / "out"
    script(fake, range(len(EXAMPLES)))
    assert main(arguments(cascade_policies, data, out)) == 0
    table = capsys.readouterr().out

    n = len(EXAMPLES)
    hedged = [i for i, (_, answer) in enumerate(EXAMPLES) if answer == HEDGE]
    models = Counter(body["model"] for body in fake.received)
    # The raw bill: every call the fake answered, less one forced call per arm and example.
    assert models == {TUNED: 2 * n, BIG_MODEL: n + len(hedged)}
    strategy_paid = (sum(price("tuned", answer) for _, answer in EXAMPLES)
                     + (models[BIG_MODEL] - n) * price("big", GOOD))
    prompted_paid = n * price("big", GOOD)

    lines = journal(out)
    strategy = [lines[f"{i}:strategy"] for i in range(n)]
    assert all(line["ok"] for line in strategy)
    assert [line["outcome"] for line in strategy] == ["escalated" if i in hedged else "accepted" for i in range(n)]
    assert [line["served_arm"] for line in strategy] == ["prompted" if i in hedged else "fine_tuned"
                                                         for i in range(n)]
    for i, line in enumerate(strategy):  # each trailer's total is the sum of the calls it lists
        assert line["cost_usd"] == pytest.approx(sum(call["cost_usd"] for call in line["calls"]))
        assert [call["arm"] for call in line["calls"]] == (["fine_tuned", "prompted"] if i in hedged
                                                           else ["fine_tuned"])
        assert [call["rejected_by"] for call in line["calls"]][:-1] == (["reject"] if i in hedged else [])

    summary = json.loads((out / "summary.json").read_text())
    view = summary["strategy"]
    assert view["name"] == "cascade" and view["engaged"] == n
    assert view["outcomes"] == {"accepted": n - len(hedged), "escalated": len(hedged)}
    assert view["escalation_rate"] == pytest.approx(len(hedged) / n)
    assert view["rejected_by"] == {"reject": len(hedged)} and view["paid_calls"] == n + len(hedged)
    assert summary["arms"]["strategy"]["cost_per_query_usd"] == pytest.approx(strategy_paid / n)
    assert summary["arms"]["strategy"]["cost_total_usd"] == pytest.approx(strategy_paid)
    # Right: the escalated answers (the prompted arm's) and the accepted good ones, not the accepted wrong one.
    right = [answer != WRONG for _, answer in EXAMPLES]
    assert summary["arms"]["strategy"]["exact_match"] == pytest.approx(sum(right) / n)
    assert view["differences"]["exact_match"]["observed"] == pytest.approx(sum(right) / n - 1.0)

    # The bar is prompting's 1.0 less 0.02: the cascade misses it, so it is not chosen.
    options = {option["option"]: option for option in summary["options"]}
    assert list(options) == ["prompting", "fine_tuned", "hybrid", "strategy"]
    cascade = options["strategy"]
    assert cascade["label"] == "the cascade" and not cascade["clears_bar"]
    assert cascade["cost_per_query_usd"] == pytest.approx(strategy_paid / n)
    assert cascade["vs_prompting"]["observed"] == pytest.approx(sum(right) / n - 1.0)
    assert cascade["break_even"]["months_to_break_even"] == pytest.approx(
        100 / (10_000_000 * (prompted_paid - strategy_paid) / n))
    assert summary["recommendation"]["verdict"] == "prompting"
    assert "cascade (the route unforced)" in table and "escalation rate 50.0%" in table

    # Asked for 0.8 instead, the cascade clears it more cheaply than anything else that does.
    assert main(arguments(cascade_policies, data, out, "--required-accuracy", "0.8")) == 0
    assert len(fake.received) == sum(models.values())  # judged again from the journal: not one call more
    summary = json.loads((out / "summary.json").read_text())
    options = {option["option"]: option for option in summary["options"]}
    clearing = sorted((o for o in options.values() if o["clears_bar"]), key=lambda o: o["cost_per_query_usd"])
    assert clearing[0]["option"] == "strategy" and "hybrid" in {o["option"] for o in clearing}
    recommendation = summary["recommendation"]
    assert (recommendation["verdict"], recommendation["strong_share"]) == ("strategy", None)
    assert recommendation["chosen"]["strategy"] == "cascade" and recommendation["cases"]["scale_optimisation"]
    assert recommendation["break_even"] == options["strategy"]["break_even"]
    assert "Recommendation: cascade (the route's strategy)" in capsys.readouterr().out
    page = (out / "report.html").read_text()
    assert 'id="options"' in page and 'data-option="strategy"' in page and 'id="strategy"' in page


def test_an_interrupted_run_resumes_without_paying_the_strategy_twice(fake: FakeUpstream, cascade_policies: Path,
                                                                      workdir: Path) -> None:
    data, out = dataset(workdir / "set.jsonl"), workdir / "out"
    script(fake, range(3))
    assert main(arguments(cascade_policies, data, out, "--limit", "3")) == 0
    first = len(fake.received)
    assert sorted(journal(out)) == sorted(f"{i}:{arm}" for i in range(3) for arm in ("prompted", "fine_tuned",
                                                                                     "strategy"))
    with (out / "responses.jsonl").open("ab") as file:
        file.write(b'{"key": "3:strategy", "exam')  # killed mid-write

    script(fake, range(3, len(EXAMPLES)))
    assert main(arguments(cascade_policies, data, out)) == 0
    questions = Counter((body["model"], body["messages"][-1]["content"]) for body in fake.received)
    for i, (question, answer) in enumerate(EXAMPLES):  # once forced, once in the cascade; never again
        assert questions[(TUNED, question)] == 2, i
        assert questions[(BIG_MODEL, question)] == (2 if answer == HEDGE else 1), i
    assert first == sum(2 + (answer == HEDGE) + 1 for _, answer in EXAMPLES[:3])
    lines = journal(out)
    assert len(lines) == 3 * len(EXAMPLES) and all(line["ok"] for line in lines.values())

    before = len(fake.received)
    assert main(arguments(cascade_policies, data, out)) == 0
    assert len(fake.received) == before


def test_url_mode_learns_the_strategy_from_the_gateway(fake: FakeUpstream, cascade_policies: Path, workdir: Path,
                                                       fake_server: tuple[FakeUpstream, ServerThread],
                                                       start_gateway: GatewayFactory) -> None:
    gateway = start_gateway()
    listed = {r["route"]: r["strategy"] for r in httpx.get(gateway.url + "/v1/routes").json()["routes"]}
    assert listed["cascading"] == "cascade" and listed["chat"] == "route"
    # The local policies say the route has no strategy; the gateway being measured says otherwise, and wins.
    local = workdir / "local"
    local.mkdir()
    (local / "policy.yaml").write_text((cascade_policies / "policy.yaml").read_text())
    (local / "cascade.yaml").write_text(CASCADE.format(url=fake_server[1].url, strategy="route", acceptors=""))
    data, out = dataset(workdir / "set.jsonl"), workdir / "out"
    script(fake, range(2))
    assert main(arguments(local, data, out, "--url", gateway.url, "--limit", "2")) == 0
    lines = journal(out)
    assert [lines[f"{i}:strategy"]["outcome"] for i in range(2)] == ["accepted", "escalated"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["strategy"]["name"] == "cascade" and summary["strategy"]["escalation_rate"] == 0.5


def test_a_plain_route_is_not_replayed_unforced(fake: FakeUpstream, policy_dir: Path, workdir: Path) -> None:
    data, out = dataset(workdir / "set.jsonl"), workdir / "out"
    argv = arguments(policy_dir, data, out, "--limit", "2")
    argv[argv.index("cascading")] = "chat"
    assert main(argv) == 0
    assert len(fake.received) == 4 and {line["arm"] for line in journal(out).values()} == {"prompted", "fine_tuned"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["strategy"] is None and [o["option"] for o in summary["options"]] == [
        "prompting", "fine_tuned", "hybrid"]


def test_an_ensemble_route_is_replayed_with_every_candidate_paid(fake: FakeUpstream, policy_dir: Path,
                                                                   fake_server: tuple[FakeUpstream, ServerThread],
                                                                   workdir: Path) -> None:
    """Both arms answer each unforced call; the vote (hedges filtered out by the acceptors, ties to the routed
    fine-tuned arm) decides which is returned, and both are on the bill."""
    (policy_dir / "cascade.yaml").write_text(CASCADE.format(
        url=fake_server[1].url, strategy="ensemble", acceptors=REJECT + "\n    ensemble: {selector: vote}"))
    data, out = dataset(workdir / "set.jsonl"), workdir / "out"
    for _, tuned in EXAMPLES:  # forced prompted, forced fine-tune, then both candidates of the ensemble
        fake.script_for(TUNED, Action(text=tuned), Action(text=tuned))
        fake.script_for(BIG_MODEL, Action(text=GOOD), Action(text=GOOD))
    assert main(arguments(policy_dir, data, out)) == 0

    n = len(EXAMPLES)
    strategy = [journal(out)[f"{i}:strategy"] for i in range(n)]
    assert [line["served_arm"] for line in strategy] == ["prompted" if answer == HEDGE else "fine_tuned"
                                                         for _, answer in EXAMPLES]
    assert all(sorted(call["arm"] for call in line["calls"]) == ["fine_tuned", "prompted"] for line in strategy)
    summary = json.loads((out / "summary.json").read_text())
    view = summary["strategy"]
    assert view["name"] == "ensemble" and view["escalation_rate"] is None and view["paid_calls"] == 2 * n
    paid = sum(price("tuned", answer) + price("big", GOOD) for _, answer in EXAMPLES)
    assert summary["arms"]["strategy"]["cost_per_query_usd"] == pytest.approx(paid / n)
