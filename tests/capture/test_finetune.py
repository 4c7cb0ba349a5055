"""The fine-tuning round trip with the real ``openai`` SDK against a fake fine-tuning API on loopback:
upload, job, progress and losses, the candidate target on success; a failed job and a cancelled one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from gateway.cli.main import main
from policies import load_policies
from tests.support.fake_finetuning import FAILED, FakeFineTuning
from tests.support.servers import ServerThread

LINE = {"messages": [{"role": "system", "content": "Support."}, {"role": "user", "content": "Refunds?"},
                     {"role": "assistant", "content": "Within 5 days."}]}
BASE_POLICY = """version: 1
targets:
  big: {provider: openai, model: gpt-4o}
routes:
  support:
    # the operator's own words, which the edit keeps
    arms: {prompted: {target: big}}
    economics:
      upfront_usd: 12000   # a guess, before the dataset existed
      projected_monthly_queries: 50000
"""


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeFineTuning, str]]:
    fake = FakeFineTuning()
    server = ServerThread(fake.app()).start()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-finetune")
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    yield fake, server.url
    server.stop()


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    directory = tmp_path / "dataset"
    directory.mkdir()
    (directory / "train.jsonl").write_bytes(orjson.dumps(LINE) + b"\n" * 1)
    (directory / "validation.jsonl").write_bytes(orjson.dumps(LINE) + b"\n")
    (directory / "manifest.json").write_bytes(orjson.dumps({
        "route": "support", "format": "openai-chat", "provider": "openai", "base_model": "gpt-4o-mini-2024-07-18",
        "epochs": 3, "counts": {"train": 1, "validation": 1, "test": 0}, "estimated_training_cost_usd": 12.34}))
    return directory


def test_submit_uploads_both_files_and_starts_the_job_with_the_manifests_epochs(
        api: tuple[FakeFineTuning, str], dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake, _ = api
    assert main(["finetune", "submit", str(dataset), "--suffix", "support"]) == 0
    (job,) = fake.jobs.values()
    assert job["model"] == "gpt-4o-mini-2024-07-18" and job["hyperparameters"]["n_epochs"] == 3
    assert fake.contents[job["training_file"]] == (dataset / "train.jsonl").read_bytes()
    assert fake.contents[job["validation_file"]] == (dataset / "validation.jsonl").read_bytes()
    assert {f["purpose"] for f in fake.files.values()} == {"fine-tune"}
    assert orjson.loads((dataset / "job.json").read_bytes())["job_id"] == job["id"]
    assert job["id"] in capsys.readouterr().out


def test_a_job_followed_to_success_gives_its_losses_and_a_candidate_target_that_loads(
        api: tuple[FakeFineTuning, str], dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["finetune", "submit", str(dataset), "--suffix", "support"]) == 0
    capsys.readouterr()
    assert main(["finetune", "status", str(dataset)]) == 0  # validating_files
    assert "validating_files, no steps yet" in capsys.readouterr().out
    assert main(["finetune", "status", str(dataset)]) == 0  # running
    assert "running, step 30/30; training loss 0.0667, validation loss 0.0733" in capsys.readouterr().out
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "base.yaml").write_text(BASE_POLICY)
    assert main(["finetune", "status", str(dataset), "--into", str(policies), "--set-upfront"]) == 0
    out = capsys.readouterr().out
    assert "succeeded" in out and "123456 trained tokens" in out
    (written,) = [path for path in policies.glob("*.yaml") if path.name != "base.yaml"]
    target_name = written.stem
    loaded = load_policies(policies)
    candidate = loaded.targets[target_name]
    assert candidate.model.startswith("ft:gpt-4o-mini-2024-07-18:acme:support:")
    assert candidate.trained_at is not None and candidate.trained_at.timestamp() == 1_700_003_600  # the job's end
    route = loaded.routes["support"]
    assert route.shadow is not None and (route.shadow.target, route.shadow.share) == (target_name, 0.1)
    assert route.economics is not None and route.economics.upfront_usd == 12.34  # the dataset's estimate
    edited = (policies / "base.yaml").read_text()
    assert "# the operator's own words, which the edit keeps" in edited and "# a guess, before" in edited
    assert f"now shadows 0.1 of its traffic to {target_name}" in out
    assert main(["finetune", "status", str(dataset), "--into", str(policies), "--target-name", target_name]) == 2
    # A second candidate: the route already shadows the first, so only its target is written, and the lines said.
    assert main(["finetune", "status", str(dataset), "--into", str(policies), "--target-name", "ft-second"]) == 0
    out = capsys.readouterr().out
    assert "already has a shadow" in out and "shadow: {target: ft-second, share: 0.1}" in out
    assert (policies / "base.yaml").read_text() == edited and "ft-second" in load_policies(policies).targets


def test_a_failed_job_and_a_cancelled_one_exit_1_with_the_reason(
        api: tuple[FakeFineTuning, str], dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake, _ = api
    fake.then(*FAILED)
    assert main(["finetune", "submit", str(dataset)]) == 0
    assert main(["finetune", "status", str(dataset), "--wait", "--poll-s", "0"]) == 1
    assert "error: invalid_training_file: line 3: messages must alternate" in capsys.readouterr().out
    assert main(["finetune", "submit", str(dataset)]) == 0  # a second job, for the same dataset
    assert main(["finetune", "cancel", str(dataset)]) == 0
    assert main(["finetune", "status", str(dataset)]) == 1
    assert "cancelled" in capsys.readouterr().out
    assert [job["status"] for job in fake.jobs.values()] == ["failed", "cancelled"]


def test_what_cannot_be_submitted_is_refused_in_one_line(api: tuple[FakeFineTuning, str], dataset: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    fake, _ = api
    manifest = orjson.loads((dataset / "manifest.json").read_bytes())
    (dataset / "manifest.json").write_bytes(orjson.dumps({**manifest, "provider": "anthropic"}))
    assert main(["finetune", "submit", str(dataset)]) == 2
    assert "finetune submits OpenAI chat datasets" in capsys.readouterr().err
    assert main(["finetune", "status", str(dataset)]) == 2  # never submitted: no job.json
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(SystemExit, match="set OPENAI_API_KEY"):
        main(["finetune", "cancel", "ftjob-1"])
    assert fake.jobs == {}
