"""The HTML report renders in headless Chromium, carries the JSON's numbers, and needs nothing external."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from gateway.cli.main import main
from gateway.evaluation.presentation import ROWS, number
from tests.conftest import BIG_MODEL, SMALL_MODEL
from tests.support.browser import DevTools, chromium
from tests.support.fake_upstream import Action, FakeUpstream
from tests.support.polling import poll

READ = """JSON.stringify({
  examples: Number(document.getElementById('examples').dataset.value),
  cells: [...document.querySelectorAll('#metrics td[data-arm]')].map(td => ({
    metric: td.parentElement.dataset.metric, arm: td.dataset.arm, value: JSON.parse(td.dataset.value),
    text: td.textContent})),
  diffs: [...document.querySelectorAll('#metrics td[data-diff]')].map(td => ({
    metric: td.parentElement.dataset.metric, part: td.dataset.diff, value: JSON.parse(td.dataset.value)})),
  points: [...document.querySelectorAll('#curve circle')].map(c => ({
    share: JSON.parse(c.dataset.share), accuracy: JSON.parse(c.dataset.accuracy), cost: JSON.parse(c.dataset.cost),
    chosen: c.classList.contains('chosen'), box: c.getBoundingClientRect().width})),
  verdict: document.getElementById('recommendation').dataset.verdict,
  share: JSON.parse(document.getElementById('recommendation').dataset.share),
  headline: document.querySelector('#recommendation .headline').textContent,
  plotWidth: document.getElementById('curve').getBoundingClientRect().width,
  height: document.documentElement.scrollHeight})"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    with chromium(tmp_path) as tools:
        yield tools


@pytest.mark.browser
def test_html_report_matches_the_json(fake: FakeUpstream, policy_dir: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                      browser: DevTools) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYBRID_GATEWAY_DATA_DIR", str(tmp_path / "var"))
    questions = ["hi", "Explain step by step, with proofs, why quicksort is O(n log n) on average.",
                 "What is 2+2?", "Write a detailed design for a distributed rate limiter in Go.", "thanks"]
    data = tmp_path / "set.jsonl"
    data.write_bytes(b"".join(orjson.dumps({"messages": [{"role": "user", "content": q}], "expected": "four"})
                              + b"\n" for q in questions))
    # The prompted arm gets every answer right; the fine-tune misses the two hard ones.
    fake.script_for(BIG_MODEL, *[Action(text="four")] * len(questions))
    fake.script_for(SMALL_MODEL, *(Action(text=a) for a in ["four", "five", "four", "three", "four"]))
    out = tmp_path / "out"
    assert main(["eval", "--data", str(data), "--route", "chat", "--policies", str(policy_dir), "--out", str(out),
                 "--concurrency", "1", "--no-progress", "--monthly-volume", "2000000", "--upfront", "500",
                 "--metric", "exact_match"]) == 0
    table = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["arms"]["prompted"]["exact_match"] == 1.0
    assert summary["arms"]["fine_tuned"]["exact_match"] == pytest.approx(0.6)
    recommendation = summary["recommendation"]
    assert f"exact match                   {1.0:.3f}       {0.6:.3f}" in table
    assert recommendation["headline"] in table

    page = (out / "report.html").read_text()
    assert "<script" not in page and "<link" not in page and "src=" not in page and "url(" not in page
    browser.send("Page.navigate", url=(out / "report.html").as_uri())
    shown = poll(lambda: json.loads(browser.evaluate(
        "document.readyState === 'complete' && document.getElementById('curve') ? " + READ + " : 'null'")
        or "null"), "the report to load", timeout_s=30)

    assert shown["examples"] == summary["examples"] == len(questions)
    kinds = {key: kind for key, _, kind in ROWS}
    expected_cells = [(key, arm) for key, _, _ in ROWS for arm in ("prompted", "fine_tuned")
                      if any(summary["arms"][a][key] is not None for a in summary["arms"])]
    assert [(c["metric"], c["arm"]) for c in shown["cells"]] == expected_cells
    for cell in shown["cells"]:
        value = summary["arms"][cell["arm"]][cell["metric"]]
        assert cell["value"] == value and cell["text"] == number(value, kinds[cell["metric"]])
    assert shown["diffs"] and all(d["value"] == summary["differences"][d["metric"]][d["part"]] for d in shown["diffs"])
    assert [(p["share"], p["accuracy"], p["cost"]) for p in shown["points"]] == [
        (p["strong_share"], p["accuracy"], p["cost_per_query_usd"]) for p in summary["curve"]]
    assert [p["share"] for p in shown["points"] if p["chosen"]] == [recommendation["chosen"]["strong_share"]]
    assert all(p["box"] > 0 for p in shown["points"]) and shown["plotWidth"] > 300
    assert (shown["verdict"], shown["share"], shown["headline"]) == (
        recommendation["verdict"], recommendation["strong_share"], recommendation["headline"])
    assert browser.exceptions == []
    assert browser.screenshot("eval-report.png", int(shown["height"])).startswith(b"\x89PNG")
