"""`router train|eval|score` through a stand-in for the project CLI (gateway/cli.py is not ours)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from routes._data import STRONG_MODEL, WEAK_MODEL, is_test_prompt

REPO = Path(__file__).resolve().parents[1]
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
