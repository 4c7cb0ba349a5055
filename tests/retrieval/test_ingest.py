"""Ingestion against a real embedded Chroma: no stale chunks, minimal re-embedding, per-file errors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from retrieval import KnowledgeStore, MiniLMEncoder, RetrievalConfigError, delete_source, ingest_paths

COLLECTION = "kb-test"


@pytest.fixture(scope="module")
def minilm() -> MiniLMEncoder:
    return MiniLMEncoder()


class CountingEncoder:
    """The real encoder, counting how many texts it was asked to embed."""

    def __init__(self, inner: MiniLMEncoder) -> None:
        self.inner, self.model_id, self.dim = inner, inner.model_id, inner.dim
        self.embedded = 0

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded += len(texts)
        return self.inner.embed(texts)


@pytest.fixture
def encoder(minilm: MiniLMEncoder) -> CountingEncoder:
    return CountingEncoder(minilm)


@pytest.fixture
def store(tmp_path: Path, encoder: CountingEncoder) -> KnowledgeStore:
    return KnowledgeStore.embedded(tmp_path / "chroma", encoder)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "plans.md").write_text(
        "# Plans\n\n## Starter\n\nStarter costs $49 a month.\n\n## Growth\n\nGrowth costs $349 a month.\n"
    )
    (root / "sla.md").write_text("# SLA\n\nUptime is 99.9% on Growth.\n")
    (root / "faq.txt").write_text("Support answers within one business day.\n")
    return root


def _all_text(store: KnowledgeStore) -> str:
    return "\n".join(c.text for c in store.chunks(COLLECTION))


def test_ingest_then_query_returns_cosine_scored_hits(store: KnowledgeStore, docs: Path) -> None:
    report = ingest_paths(store, [docs], COLLECTION, base_dir=docs.parent)
    assert report.ok and report.files_ok == ["docs/faq.txt", "docs/plans.md", "docs/sla.md"]
    assert store.sources(COLLECTION) == {"docs/faq.txt": 1, "docs/plans.md": 2, "docs/sla.md": 1}
    best = store.query(COLLECTION, "How much is the Growth plan?", k=2)[0]
    assert best.source == "docs/plans.md" and "$349" in best.text
    assert 0.3 < best.score <= 1.0 and best.metadata["headings"] == "Plans > Growth"


def test_changed_document_leaves_no_stale_chunks(store: KnowledgeStore, docs: Path) -> None:
    ingest_paths(store, [docs], COLLECTION, base_dir=docs.parent)
    (docs / "plans.md").write_text("# Plans\n\n## Growth\n\nGrowth now costs $399 a month.\n")
    report = ingest_paths(store, [docs], COLLECTION, base_dir=docs.parent)
    text = _all_text(store)
    assert "$399" in text and "$349" not in text and "Starter" not in text
    assert (report.chunks_added, report.chunks_removed) == (1, 2)
    hit = store.query(COLLECTION, "Growth plan price", k=1)[0]
    assert "$399" in hit.text


def test_files_deleted_from_a_directory_are_pruned(store: KnowledgeStore, docs: Path) -> None:
    ingest_paths(store, [docs], COLLECTION, base_dir=docs.parent)
    (docs / "sla.md").unlink()
    report = ingest_paths(store, [docs], COLLECTION, base_dir=docs.parent)
    assert report.sources_removed == ["docs/sla.md"]
    assert "docs/sla.md" not in store.sources(COLLECTION) and "99.9%" not in _all_text(store)


def test_delete_source_removes_every_chunk(store: KnowledgeStore, docs: Path) -> None:
    ingest_paths(store, [docs], COLLECTION, base_dir=docs.parent)
    report = delete_source(store, COLLECTION, "docs/plans.md")
    assert report.chunks_removed == 2 and list(store.sources(COLLECTION)) == ["docs/faq.txt", "docs/sla.md"]
    assert delete_source(store, COLLECTION, "docs/plans.md").chunks_removed == 0


def test_unchanged_chunks_are_not_embedded_again(
    store: KnowledgeStore, encoder: CountingEncoder, docs: Path
) -> None:
    ingest_paths(store, [docs], COLLECTION, base_dir=docs.parent)
    assert encoder.embedded == 4
    again = ingest_paths(store, [docs], COLLECTION, base_dir=docs.parent)
    assert encoder.embedded == 4 and again.chunks_unchanged == 4 and again.chunks_added == 0
    # A new section on top shifts the others' positions (new ids) but their text is reused, not re-encoded.
    plans = docs / "plans.md"
    plans.write_text(plans.read_text().replace("# Plans\n", "# Plans\n\n## Free\n\nA free tier exists.\n", 1))
    moved = ingest_paths(store, [plans], COLLECTION, base_dir=docs.parent)
    assert encoder.embedded == 5 and moved.chunks_embedded == 1
    assert (moved.chunks_added, moved.chunks_removed) == (3, 2)
    assert store.sources(COLLECTION)["docs/plans.md"] == 3


def test_malformed_files_are_reported_and_skipped(store: KnowledgeStore, docs: Path) -> None:
    (docs / "broken.jsonl").write_text('{"text": "fine"}\nnot json\n')
    (docs / "binary.md").write_bytes(b"\xff\xfe\x00bad")
    report = ingest_paths(store, [docs, docs / "missing.md"], COLLECTION, base_dir=docs.parent)
    assert not report.ok
    failures = {f.source: f.reason for f in report.files_failed}
    assert failures.keys() == {"docs/broken.jsonl", "docs/binary.md", "docs/missing.md"}
    assert "line 2" in failures["docs/broken.jsonl"] and "no such file" in failures["docs/missing.md"]
    assert set(report.files_ok) == {"docs/faq.txt", "docs/plans.md", "docs/sla.md"}


def test_a_file_that_turns_malformed_keeps_its_previous_chunks(store: KnowledgeStore, docs: Path) -> None:
    (docs / "records.json").write_text('[{"text": "Invoices are kept seven years."}]')
    ingest_paths(store, [docs], COLLECTION, base_dir=docs.parent)
    (docs / "records.json").write_text('[{"text": ')
    report = ingest_paths(store, [docs], COLLECTION, base_dir=docs.parent)
    assert [f.source for f in report.files_failed] == ["docs/records.json"]
    assert "seven years" in _all_text(store)


def test_progress_callback_sees_every_file(store: KnowledgeStore, docs: Path) -> None:
    calls: list[tuple[int, int, str]] = []
    ingest_paths(store, [docs], COLLECTION, base_dir=docs.parent, progress=lambda *a: calls.append(a))
    assert calls == [(1, 3, "docs/faq.txt"), (2, 3, "docs/plans.md"), (3, 3, "docs/sla.md")]


def test_collection_built_by_another_model_is_refused(
    tmp_path: Path, store: KnowledgeStore, docs: Path
) -> None:
    ingest_paths(store, [docs / "faq.txt"], COLLECTION, base_dir=docs.parent)

    other_model = CountingEncoder(store.encoder.inner)  # type: ignore[attr-defined]
    other_model.model_id = "another-model"
    other = KnowledgeStore.embedded(tmp_path / "chroma", other_model)
    with pytest.raises(RetrievalConfigError, match="another-model"):
        other.query(COLLECTION, "support")
