"""The CLI verbs end to end, in subprocesses, through a throwaway argparse runner like the main CLI's."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from retrieval.cli import ProgressBar

ROOT = Path(__file__).resolve().parents[1]
def run_cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "sla.md").write_text("# SLA\n\nUptime is 99.9% on the Growth plan.\n")
    (docs / "refunds.txt").write_text("Annual plans can be refunded within 30 days.\n")
    (docs / "broken.json").write_text("{not json")
    return tmp_path


def test_ingest_query_list_and_delete(workdir: Path) -> None:
    data = ["--collection", "cli-docs", "--data-dir", "store"]
    ingested = run_cli("ingest", *data, "docs", cwd=workdir)
    assert ingested.returncode == 1  # one file failed; the others were ingested
    report: dict[str, Any] = json.loads(ingested.stdout)
    assert report["files_ok"] == ["docs/refunds.txt", "docs/sla.md"]
    assert report["files_failed"][0]["source"] == "docs/broken.json"
    assert "skipped docs/broken.json" in ingested.stderr

    queried = run_cli("knowledge", "query", *data, "--k", "1", "what uptime is promised?", cwd=workdir)
    assert queried.returncode == 0, queried.stderr
    (hit,) = json.loads(queried.stdout)
    assert set(hit) == {"source", "chunk_id", "score", "text"} and hit["source"] == "docs/sla.md"

    deleted = run_cli("ingest", *data, "--delete", "docs/sla.md", cwd=workdir)
    assert deleted.returncode == 0 and json.loads(deleted.stdout)["chunks_removed"] == 1
    listed = run_cli("knowledge", "list", *data, cwd=workdir)
    assert json.loads(listed.stdout) == [{"source": "docs/refunds.txt", "chunks": 1}]


def test_default_data_dir_comes_from_the_environment(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYBRID_GATEWAY_DATA_DIR", str(workdir / "env-store"))
    done = run_cli("ingest", "--collection", "env-docs", "docs/sla.md", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert (workdir / "env-store").is_dir() and not (workdir / "var").exists()


def test_usage_errors(workdir: Path) -> None:
    assert run_cli("ingest", "--collection", "x-docs", cwd=workdir).returncode == 2
    bad_url = run_cli("knowledge", "list", "--collection", "x-docs", "--chroma-url", "ftp://h", cwd=workdir)
    assert bad_url.returncode == 1 and "http(s)://" in bad_url.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_only_on_a_terminal_for_long_runs() -> None:
    terminal, pipe = _Terminal(), io.StringIO()
    for done in range(1, 11):
        ProgressBar(terminal)(done, 10, f"docs/{done}.md")
        ProgressBar(pipe)(done, 10, f"docs/{done}.md")
    assert terminal.getvalue().endswith("] 10/10 docs/10.md" + " " * 30 + "\n") and pipe.getvalue() == ""
    short = _Terminal()
    ProgressBar(short)(1, 2, "a.md")
    assert short.getvalue() == ""
