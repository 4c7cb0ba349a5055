"""`router train|eval|score` through a stand-in for the project CLI (gateway/cli/main.py is not ours)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from routes.training.data import STRONG_MODEL, WEAK_MODEL, is_test_prompt

REPO = Path(__file__).resolve().parents[2]
def _run(*argv: str, stdin: str = "", cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "router", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def _write_dataset(folder: Path, rows: int = 80) -> None:
    """Hard prompts (long, maths) only the strong arm solves; easy ones both arms solve."""
    folder.mkdir()
    with (folder / "synthetic.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", WEAK_MODEL, STRONG_MODEL])
        for i in range(rows):
            if i % 2:
                prompt = f"Prove the theorem {i}: integrate the polynomial x^{i} + {i}x = 0 step by step, then derive the limit."
                writer.writerow([prompt, "False", "True"])
            else:
                writer.writerow([f"Say hello number {i}.", "True", "True"])


def test_score_reads_json_lines_and_survives_bad_lines() -> None:
    lines = [
        json.dumps({"prompt": "What is the capital of France?"}),
        "not json",
        json.dumps({"messages": [{"role": "user", "content": "Prove Fermat's little theorem."}]}),
        json.dumps(
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}
        ),
        json.dumps({"nothing": 1}),
        "",
    ]
    result = _run("score", "--threshold", "0.5", stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == len(lines)
    assert set(out[0]) == {"score", "arm"} and 0.0 <= out[0]["score"] <= 1.0
    assert out[0]["arm"] in ("prompted", "fine_tuned")
    assert "error" in out[1] and "error" in out[4] and "error" in out[5]
    assert set(out[2]) == {"score", "arm"}
    assert out[3] == {"score": None, "arm": "prompted"}


def test_score_with_strong_share_routes_the_extremes() -> None:
    lines = [json.dumps({"prompt": "hi"}), json.dumps({"prompt": "hi"})]
    everything = _run("score", "--strong-share", "1.0", stdin="\n".join(lines))
    nothing = _run("score", "--strong-share", "0.0", stdin="\n".join(lines))
    assert [json.loads(x)["arm"] for x in everything.stdout.splitlines()] == ["prompted", "prompted"]
    assert [json.loads(x)["arm"] for x in nothing.stdout.splitlines()] == ["fine_tuned", "fine_tuned"]
    assert _run("score", "--strong-share", "2").returncode == 2


def test_train_then_eval_on_a_synthetic_folder(tmp_path: Path) -> None:
    data = tmp_path / "toy"
    _write_dataset(data)
    model = tmp_path / "toy.npz"
    trained = _run("train", "--data", str(data), "--out", str(model), "--bits", "12")
    assert trained.returncode == 0, trained.stderr
    assert model.is_file() and model.stat().st_size < 200_000

    score = _run(
        "score",
        "--model",
        str(model),
        stdin=json.dumps(
            {"prompt": "Prove the theorem: integrate x^3 + 2x = 0 step by step, then derive the limit."}
        )
        + "\n"
        + json.dumps({"prompt": "Say hello number 7."})
        + "\n",
    )
    hard, easy = (json.loads(line)["score"] for line in score.stdout.splitlines())
    assert hard > easy

    n_test = sum(
        is_test_prompt(row[0]) for row in csv.reader((data / "synthetic.csv").open()) if row[0] != "prompt"
    )
    assert n_test > 0
    evaluated = _run("eval", "--data", str(data), "--model", str(model), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    payload = json.loads(evaluated.stdout)
    (report,) = payload["reports"]
    assert payload["strong_share"]["target"] == 0.3
    assert report["n"] == n_test
    assert [r["router"] for r in report["routers"]] == ["classifier", "length", "random"]
    assert report["routers"][0]["apgr"] > 0.7  # a perfect router on a 50/50 set scores 0.75


@pytest.mark.parametrize("command", ["train", "eval"])
def test_missing_data_folder_is_a_clean_error(tmp_path: Path, command: str) -> None:
    extra = ["--out", str(tmp_path / "m.npz")] if command == "train" else []
    result = _run(command, "--data", str(tmp_path / "nope"), *extra)
    assert result.returncode == 2
    assert "not a directory" in result.stderr and "Traceback" not in result.stderr


def test_default_data_root_is_relative_to_cwd(tmp_path: Path) -> None:
    result = _run("eval", cwd=tmp_path)
    assert result.returncode == 2
    assert str(Path("../shared/data/routing/mmlu")) in result.stderr


def test_embedding_model_trains_and_scores_by_path(tmp_path: Path) -> None:
    data = tmp_path / "toy"
    _write_dataset(data)
    model = tmp_path / "toy-embedding.npz"
    trained = _run("train", "--data", str(data), "--out", str(model), "--bits", "12", "--kind", "embedding")
    assert trained.returncode == 0, trained.stderr
    lines = [
        json.dumps({"prompt": "Prove the theorem: integrate x^3 + 2x = 0 step by step, then derive the limit."}),
        json.dumps({"prompt": "Say hello number 7."}),
    ]
    score = _run("score", "--model", str(model), stdin="\n".join(lines) + "\n")
    assert score.returncode == 0, score.stderr
    hard, easy = (json.loads(line)["score"] for line in score.stdout.splitlines())
    assert hard > easy


def test_cv_reports_both_models(tmp_path: Path) -> None:
    data = tmp_path / "toy"
    _write_dataset(data, rows=120)
    result = _run("cv", "--data", str(data), "--folds", "2", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert {f["router"] for f in payload["figures"]} == {"linear", "fast", "default", "length"}
    assert all(f["apgr"] > 0.7 for f in payload["figures"] if f["router"] != "length")
    assert payload["cross_domain"] == []  # needs mmlu and gsm8k folders


def test_train_needs_out_or_shipped() -> None:
    assert _run("train").returncode == 2


SCORE_POLICY = """
version: 1
targets:
  big: {{provider: vllm, model: big-model, api_base: "{url}/v1"}}
  small: {{provider: vllm, model: small-model, api_base: "{url}/v1"}}
routes:
  fixed:
    classifier: {{model: fast, threshold: 0.52, low_confidence: fine_tuned}}
    arms: {{prompted: {{target: big}}, fine_tuned: {{target: small}}}}
  live:
    classifier: {{model: fast, strong_share: 0.3, calibration: {{prior_weight: 5}}}}
    arms: {{prompted: {{target: big}}, fine_tuned: {{target: small}}}}
"""
QUESTIONS = ["How do refunds work?", "Do you support webhooks?", "What does the Growth plan cost?",
             "Prove that the sum of the first n odd numbers is n squared.", "hi"]


def _prompts(*extra: str) -> str:
    return "\n".join(json.dumps({"prompt": q}) for q in (*QUESTIONS, *extra)) + "\n"


def _policy(tmp_path: Path, url: str = "http://127.0.0.1:1") -> Path:
    directory = tmp_path / "policies"
    directory.mkdir(exist_ok=True)
    (directory / "p.yaml").write_text(SCORE_POLICY.format(url=url))
    return directory


def test_bare_score_says_which_threshold_it_used() -> None:
    result = _run("score", stdin=_prompts())
    assert result.returncode == 0 and "threshold 0.5 (the default" in result.stderr
    shared = _run("score", "--strong-share", "0.3", stdin=_prompts())
    assert "on the model's training quantiles" in shared.stderr


def test_score_with_a_fixed_route_applies_its_threshold_model_and_low_confidence_arm(tmp_path: Path) -> None:
    image = json.dumps({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]})
    result = _run("score", "--route", "fixed", "--policies", str(_policy(tmp_path)), stdin=_prompts() + image + "\n")
    assert result.returncode == 0, result.stderr
    assert "threshold 0.5200: the fixed threshold of route 'fixed'" in result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["arm"] for row in out[:-1]] == ["prompted" if row["score"] >= 0.52 else "fine_tuned" for row in out[:-1]]
    assert out[-1] == {"score": None, "arm": "fine_tuned"}  # the route's low_confidence, not the CLI default


def test_score_with_a_calibrated_route_uses_the_warm_start_and_points_at_the_live_one() -> None:
    result = _run("score", "--route", "support", stdin=_prompts())  # the shipped policies
    assert result.returncode == 0, result.stderr
    assert "the warm start of route 'support'" in result.stderr and "GET /v1/routes" in result.stderr


@pytest.mark.parametrize(("argv", "says"), [
    (("--route", "nope"), "'nope': no such route"),
    (("--route", "fixed", "--model", "fast"), "drop --model"),
    (("--url", "http://127.0.0.1:1"), "give --route NAME"),
    (("--route", "fixed", "--url", "http://127.0.0.1:1"), "has a fixed threshold"),
    (("--route", "live", "--url", "http://127.0.0.1:1"), "/v1/routes"),
])
def test_score_route_errors_are_clean(tmp_path: Path, argv: tuple[str, ...], says: str) -> None:
    result = _run("score", "--policies", str(_policy(tmp_path)), *argv, stdin=_prompts())
    assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr


def test_score_with_url_applies_the_gateway_s_live_threshold(tmp_path: Path) -> None:
    from gateway.app import create_app
    from gateway.settings import Settings
    from routes import CALIBRATION_BINS
    from tests.support.fake_upstream import FakeUpstream
    from tests.support.servers import ServerThread
    from tests.support.support_traffic import support_questions

    upstream = ServerThread(FakeUpstream().app()).start()
    policies = _policy(tmp_path, upstream.url)
    gateway = ServerThread(create_app(Settings(policies_dir=policies, data_dir=tmp_path / "var"))).start()
    try:
        with httpx.Client(timeout=30) as client:
            for question in support_questions(60, seed=3):
                assert client.post(gateway.url + "/v1/chat/completions", json={
                    "model": "live", "messages": [{"role": "user", "content": question}]}).status_code == 200
            view = next(r["classifier"] for r in client.get(gateway.url + "/v1/routes").json()["routes"]
                        if r["route"] == "live")
        warm = _run("score", "--route", "live", "--policies", str(policies), stdin=_prompts())
        live = _run("score", "--route", "live", "--policies", str(policies), "--url", gateway.url, stdin=_prompts())
    finally:
        gateway.stop()
        upstream.stop()
    assert live.returncode == 0, live.stderr
    assert f"threshold {view['threshold']:.4f}: the live threshold of route 'live'" in live.stderr
    assert "60 decisions" in live.stderr and view["threshold"] < float(warm.stderr.split()[3].rstrip(":"))
    for row in map(json.loads, live.stdout.splitlines()):
        index = int(row["score"] * CALIBRATION_BINS)
        if index != view["cut"]["bin"]:  # inside the cut's own bin the rule draws at random
            assert row["arm"] == ("prompted" if index > view["cut"]["bin"] else "fine_tuned")
