"""``eval`` resumes an interrupted run without paying twice, retries what may pass, and counts what fails.

The scripted fake upstream records every request it receives, so the tests
count exactly how many calls each example cost per arm across runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.cli.main import main
from tests.conftest import BIG_MODEL, SMALL_MODEL, GatewayFactory
from tests.support.fake_upstream import Action, FakeUpstream
from tests.support.metrics import metric_sum
from tests.support.polling import poll

MODELS = {BIG_MODEL: "prompted", SMALL_MODEL: "fine_tuned"}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYBRID_GATEWAY_DATA_DIR", str(tmp_path / "var"))
    return tmp_path


def dataset(path: Path, count: int) -> Path:
    path.write_bytes(b"".join(orjson.dumps({"messages": [{"role": "user", "content": f"question {i}"}],
                                            "expected": "Hello from the fake upstream."}) + b"\n"
                              for i in range(count)))
    return path


def calls(fake: FakeUpstream) -> Counter[tuple[str, str]]:
    """Upstream calls per (arm, question)."""
    return Counter((MODELS[body["model"]], body["messages"][-1]["content"]) for body in fake.received)


def journal(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]


def arguments(policy_dir: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "--data", str(data), "--route", "chat", "--policies", str(policy_dir), "--out", str(out),
            "--no-progress", "--bootstrap-samples", "200", *extra]


def test_a_limited_run_resumes_without_repeating_calls(fake: FakeUpstream, policy_dir: Path, workdir: Path) -> None:
    data, out = dataset(workdir / "set.jsonl", 5), workdir / "out"
    assert main(arguments(policy_dir, data, out, "--limit", "3", "--concurrency", "2")) == 0
    assert calls(fake) == Counter({(arm, f"question {i}"): 1 for arm in MODELS.values() for i in range(3)})
    first = (out / "responses.jsonl").read_bytes()
    assert first.count(b"\n") == 6
    with (out / "responses.jsonl").open("ab") as file:
        file.write(b'{"key": "3:prompted", "exam')  # killed mid-write

    assert main(arguments(policy_dir, data, out, "--concurrency", "2")) == 0
    assert calls(fake) == Counter({(arm, f"question {i}"): 1 for arm in MODELS.values() for i in range(5)})
    lines = journal(out)
    assert len(lines) == 10 and len({line["key"] for line in lines}) == 10
    assert (out / "responses.jsonl").read_bytes().startswith(first)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["examples"] == 5 and summary["arms"]["prompted"]["exact_match"] == 1.0
    assert summary["recommendation"] is None and summary["notes"]  # the route has no economics block

    assert main(arguments(policy_dir, data, out)) == 0  # all done: not one more call
    assert len(fake.received) == 10


def test_a_killed_run_resumes_and_only_the_call_in_flight_is_made_again(
        fake: FakeUpstream, policy_dir: Path, workdir: Path) -> None:
    data, out = dataset(workdir / "set.jsonl", 4), workdir / "out"
    (workdir / "var").mkdir()
    # One call at a time, prompted then fine-tuned per example: the 4th call, question 1's fine-tuned
    # answer, is in flight when the run dies.
    fake.script_for(SMALL_MODEL, Action(), Action(delay_s=5))
    child = subprocess.Popen([sys.executable, "-m", "gateway.cli", *arguments(policy_dir, data, out,
                                                                              "--concurrency", "1")],
                             cwd=workdir / "var", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)  # not cwd: `python -m` would import its policies/ folder
    try:
        poll(lambda: (out / "responses.jsonl").exists() and len(journal(out)) == 3 and len(fake.received) == 4,
             "three journaled calls and a fourth in flight", timeout_s=60)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    assert len(journal(out)) == 3

    assert main(arguments(policy_dir, data, out, "--concurrency", "1")) == 0
    expected = Counter({(arm, f"question {i}"): 1 for arm in MODELS.values() for i in range(4)})
    expected[("fine_tuned", "question 1")] = 2  # unfinished when killed, so never journaled
    assert calls(fake) == expected
    assert sorted(line["key"] for line in journal(out)) == sorted(f"{i}:{arm}" for i in range(4)
                                                                  for arm in MODELS.values())


def test_retries_and_errors(fake: FakeUpstream, policy_dir: Path, workdir: Path) -> None:
    data, out = dataset(workdir / "set.jsonl", 3), workdir / "out"
    # 0/prompted fails once then passes; 1/prompted fails three times (1 try + 2 retries): an error;
    # the rest pass.
    fake.script_for(BIG_MODEL, Action(status=503), Action(), *[Action(status=500)] * 3)
    assert main(arguments(policy_dir, data, out, "--concurrency", "1", "--retries", "2",
                          "--backoff", "0.01")) == 0
    lines = {line["key"]: line for line in journal(out)}
    assert lines["0:prompted"]["tries"] == 2 and lines["0:prompted"]["ok"]
    assert lines["1:prompted"]["tries"] == 3 and not lines["1:prompted"]["ok"]
    assert lines["1:prompted"]["status"] == 502 and lines["1:prompted"]["code"] == "upstream_error"
    summary = json.loads((out / "summary.json").read_text())
    prompted, tuned = summary["arms"]["prompted"], summary["arms"]["fine_tuned"]
    assert (prompted["errors"], prompted["error_rate"]) == (1, pytest.approx(1 / 3))
    assert (tuned["errors"], tuned["error_rate"]) == (0, 0)
    assert prompted["exact_match"] == pytest.approx(2 / 3)  # the failed example scores 0
    assert summary["differences"]["error_rate"]["observed"] == pytest.approx(-1 / 3)
    assert len(fake.received) == 6 + 3  # 6 answers, 3 failed attempts

    before = len(fake.received)
    assert main(arguments(policy_dir, data, out)) == 0  # a journaled error is a result: not retried
    assert len(fake.received) == before


def test_a_route_without_arm_override_stops_the_run(fake: FakeUpstream, policy_dir: Path, workdir: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    data, out = dataset(workdir / "set.jsonl", 2), workdir / "out"
    argv = arguments(policy_dir, data, out)
    argv[argv.index("chat")] = "chat-small"
    assert main(argv) == 1
    assert "arm_override_not_allowed" in capsys.readouterr().err
    assert not fake.received


def test_json_schema_conformance(fake: FakeUpstream, policy_dir: Path, workdir: Path) -> None:
    data, out = dataset(workdir / "set.jsonl", 2), workdir / "out"
    schema = workdir / "schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["plan"]}))
    # prompted: valid, valid; fine_tuned: not JSON, JSON without the required key.
    fake.script_for(BIG_MODEL, Action(text='{"plan": "Growth"}'), Action(text='{"plan": 1}'))
    fake.script_for(SMALL_MODEL, Action(text="Growth"), Action(text='{"tier": "Growth"}'))
    assert main(arguments(policy_dir, data, out, "--concurrency", "1", "--json-schema", str(schema),
                          "--metric", "json_valid")) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["arms"]["prompted"]["json_valid"] == 1.0 and summary["arms"]["fine_tuned"]["json_valid"] == 0.0
    assert summary["differences"]["json_valid"]["observed"] == -1.0
    assert summary["curve"][0]["accuracy"] == 0.0 and summary["curve"][-1]["accuracy"] == 1.0


def test_one_arm(fake: FakeUpstream, policy_dir: Path, workdir: Path) -> None:
    data, out = dataset(workdir / "set.jsonl", 3), workdir / "out"
    assert main(arguments(policy_dir, data, out, "--arms", "fine_tuned", "--limit", "2")) == 0
    assert calls(fake) == Counter({("fine_tuned", "question 0"): 1, ("fine_tuned", "question 1"): 1})
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["arms"]) == ["fine_tuned"] and (summary["examples"], summary["examples_in_set"]) == (2, 3)
    assert summary["differences"] is None and summary["curve"] is None and summary["recommendation"] is None
    page = (out / "report.html").read_text()
    assert 'data-metric="f1"' in page and 'id="curve"' not in page and 'id="recommendation"' not in page


def test_url_mode_drives_a_running_gateway_and_retries_a_429(fake: FakeUpstream, policy_dir: Path, workdir: Path,
                                                             start_gateway: GatewayFactory) -> None:
    gateway = start_gateway()
    data, out = dataset(workdir / "set.jsonl", 3), workdir / "out"
    fake.script_for(BIG_MODEL, Action(status=429, retry_after="0"))  # the gateway passes it on; eval waits and retries
    assert main(arguments(policy_dir, data, out, "--url", gateway.url, "--concurrency", "1",
                          "--backoff", "0.01")) == 0
    lines = {line["key"]: line for line in journal(out)}
    assert lines["0:prompted"]["tries"] == 2 and all(line["ok"] for line in lines.values())
    assert len(fake.received) == 6 + 1
    metrics = httpx.get(gateway.url + "/metrics").text  # billed once per answer, the 429 not at all
    assert metric_sum(metrics, "gateway_requests_total", status="200") == 6
    assert metric_sum(metrics, "gateway_requests_total", status="429") == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["arms"]["prompted"]["cost_per_query_usd"] * 3 == pytest.approx(
        metric_sum(metrics, "gateway_cost_usd_total", arm="prompted"))
