"""The CLI verbs end to end, in subprocesses, through a throwaway argparse runner like the main CLI's."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from retrieval.cli import ProgressBar
from tests.support.process import run_cli


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
    # The gateway's layout: the embedded store is the data directory's chroma/ (see test_rag_gateway).
    assert (workdir / "env-store" / "chroma").is_dir() and not (workdir / "var").exists()


def test_sources_are_named_from_the_ingested_root_wherever_ingest_runs(workdir: Path) -> None:
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    data = ["--collection", "root-docs", "--data-dir", str(workdir / "store")]
    ingested = run_cli("ingest", *data, str(workdir / "docs"), cwd=elsewhere)
    assert json.loads(ingested.stdout)["files_ok"] == ["docs/refunds.txt", "docs/sla.md"]
    named = run_cli("ingest", *data, "--name", "faq/refunds.txt", str(workdir / "docs" / "refunds.txt"), cwd=elsewhere)
    assert named.returncode == 0, named.stderr
    assert json.loads(named.stdout)["files_ok"] == ["faq/refunds.txt"]
    listed = run_cli("knowledge", "list", *data, cwd=workdir)
    assert [row["source"] for row in json.loads(listed.stdout)] == ["docs/refunds.txt", "docs/sla.md", "faq/refunds.txt"]
    two = run_cli("ingest", *data, "--name", "x", "docs/sla.md", "docs/refunds.txt", cwd=workdir)
    assert two.returncode == 2 and "--name names a single PATH" in two.stderr


def test_asking_about_what_does_not_exist_fails_and_says_so(workdir: Path) -> None:
    missing_store = run_cli("knowledge", "list", "--collection", "cli-docs", "--data-dir", "nowhere", cwd=workdir)
    assert missing_store.returncode == 1 and "no knowledge store at nowhere/chroma" in missing_store.stderr
    assert not (workdir / "nowhere").exists()  # asking did not create an empty store
    data = ["--data-dir", "store"]
    assert run_cli("ingest", "--collection", "cli-docs", *data, "docs/sla.md", cwd=workdir).returncode == 0
    for verb in (["list"], ["query", "uptime"]):
        unknown = run_cli("knowledge", *verb, "--collection", "other-docs", *data, cwd=workdir)
        assert unknown.returncode == 1 and unknown.stdout == ""
        assert "collection 'other-docs' does not exist or is empty" in unknown.stderr
    no_source = run_cli("knowledge", "list", "--collection", "cli-docs", *data, "--source", "docs/x.md", cwd=workdir)
    assert no_source.returncode == 1 and "no source 'docs/x.md'" in no_source.stderr


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
