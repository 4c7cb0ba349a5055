"""Bring files into a collection so that it mirrors them exactly.

For each file: load, chunk, compare the new chunk ids with the stored ones of
that source, then write the new chunks before deleting the vanished ones (the
source is never briefly empty). Chunks whose id is unchanged are left alone;
new chunks whose content already existed under another id (moved by an edit
above them) reuse the stored vector. Only genuinely new text is encoded.

Re-ingesting a directory also removes sources that were under it but whose
files are gone. A file that fails to load is reported and keeps its previous
chunks (a transient read error must not wipe knowledge); the batch goes on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.chunking import Chunk, ChunkingConfig, chunk_blocks
from retrieval.errors import DocumentError
from retrieval.loaders import LOADERS, load_blocks
from retrieval.store import KnowledgeStore
from retrieval.tokens import token_counter_for

#: Called after each file with (files done, files total, source just processed).
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class FileFailure:
    """A file that could not be ingested, and why."""

    source: str
    reason: str


@dataclass
class IngestReport:
    """What one ingestion run did; ``ok`` is False when any file failed."""

    files_ok: list[str] = field(default_factory=list)
    files_failed: list[FileFailure] = field(default_factory=list)
    sources_removed: list[str] = field(default_factory=list)
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_unchanged: int = 0
    chunks_embedded: int = 0

    @property
    def ok(self) -> bool:
        return not self.files_failed

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for the CLI."""
        return {
            "ok": self.ok,
            "files_ok": self.files_ok,
            "files_failed": [{"source": f.source, "reason": f.reason} for f in self.files_failed],
            "sources_removed": self.sources_removed,
            "chunks_added": self.chunks_added,
            "chunks_removed": self.chunks_removed,
            "chunks_unchanged": self.chunks_unchanged,
            "chunks_embedded": self.chunks_embedded,
        }


def root_name(root: Path, base_dir: Path | None = None) -> str:
    """The name an ingested PATH argument goes by in source names.

    Relative to ``base_dir`` when it lies under it ("." for ``base_dir`` itself);
    otherwise the root's own file or directory name. Never an absolute path: a
    source is shown to clients, and the ingesting machine's layout is neither
    their business nor stable across machines.
    """
    resolved = root.resolve()
    if base_dir is not None:
        try:
            return resolved.relative_to(base_dir.resolve()).as_posix()
        except ValueError:
            pass
    return resolved.name or "."


def source_name(path: Path, root: Path, name: str) -> str:
    """``path`` (a file under ``root``, or ``root`` itself) as a POSIX name under the root's ``name``."""
    relative = path.resolve().relative_to(root.resolve()).as_posix()
    if relative == ".":
        return name
    return relative if name == "." else f"{name}/{relative}"


def _walk(directory: Path) -> Iterator[Path]:
    """Supported files under ``directory``, sorted, skipping hidden files and folders."""
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in LOADERS:
                yield Path(root, name)


def _sync_source(
    store: KnowledgeStore, collection: str, source: str, chunks: list[Chunk], report: IngestReport
) -> None:
    """Make the stored chunks of ``source`` equal ``chunks``, encoding as little as possible."""
    stored = store.chunk_hashes(collection, source)
    wanted = {c.id for c in chunks}
    new = [c for c in chunks if c.id not in stored]
    vanished = [id_ for id_ in stored if id_ not in wanted]
    # Content that only moved (same hash, new position) keeps its stored vector.
    old_by_hash = {stored[id_]: id_ for id_ in vanished}
    moved = {c.id: old_by_hash[h] for c in new if (h := str(c.metadata["content_hash"])) in old_by_hash}
    reused = store.embeddings(collection, sorted(set(moved.values())))
    to_encode = [c for c in new if moved.get(c.id) not in reused]
    vectors = dict(
        zip((c.id for c in to_encode), store.encoder.embed([c.text for c in to_encode]), strict=True)
    )
    vectors |= {id_: reused[old] for id_, old in moved.items() if old in reused}
    if new:
        store.upsert(collection, new, np.stack([vectors[c.id] for c in new]))
    store.delete(collection, vanished)
    report.chunks_added += len(new)
    report.chunks_removed += len(vanished)
    report.chunks_unchanged += len(chunks) - len(new)
    report.chunks_embedded += len(to_encode)


def ingest_paths(
    store: KnowledgeStore,
    paths: Iterable[Path | str],
    collection: str,
    *,
    base_dir: Path | None = None,
    name: str | None = None,
    chunking: ChunkingConfig | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Ingest files and directories (recursively) into ``collection``.

    Each PATH is a root named by :func:`root_name` (or ``name``, for a single
    PATH); its files are named relative to it, e.g. ``docs/sla.md`` for
    ``/srv/kb/docs/sla.md`` ingested as ``/srv/kb/docs``. Per-file problems land
    in ``report.files_failed``; store failures (RetrievalUnavailable) abort the
    run, since every later file would fail too.
    """
    roots = [Path(raw) for raw in paths]
    if name is not None and len(roots) != 1:
        raise ValueError("a source name can only be given for a single path")
    count = token_counter_for(store.encoder)
    report = IngestReport()
    files: list[tuple[Path, str]] = []
    pruned_dirs: list[str] = []
    for root in roots:
        label = name or root_name(root, base_dir)
        if root.is_dir():
            files.extend((path, source_name(path, root, label)) for path in _walk(root))
            pruned_dirs.append(label)
        else:
            files.append((root, label))
    seen: set[str] = set()
    for done, (path, source) in enumerate(files, 1):
        seen.add(source)
        try:
            if not path.is_file():
                raise DocumentError(path, "no such file")
            chunks = chunk_blocks(source, load_blocks(path), count, chunking)
        except DocumentError as exc:
            report.files_failed.append(FileFailure(source, exc.reason))
        else:
            _sync_source(store, collection, source, chunks, report)
            report.files_ok.append(source)
        if progress:
            progress(done, len(files), source)
    if pruned_dirs:
        _prune(store, collection, pruned_dirs, seen, report)
    return report


def _is_under(source: str, directory: str) -> bool:
    """Whether a source name lies in a directory named the same way (see root_name)."""
    if directory == ".":
        return True
    return source.startswith(directory.rstrip("/") + "/")


def _prune(
    store: KnowledgeStore, collection: str, dirs: list[str], seen: set[str], report: IngestReport
) -> None:
    """Remove sources under the ingested directories whose files no longer exist."""
    for source in store.sources(collection):
        if source not in seen and any(_is_under(source, d) for d in dirs):
            report.chunks_removed += store.delete_source(collection, source)
            report.sources_removed.append(source)


def delete_source(store: KnowledgeStore, collection: str, source: str) -> IngestReport:
    """Remove one source's chunks; the report counts them as removed."""
    removed = store.delete_source(collection, source)
    return IngestReport(sources_removed=[source] if removed else [], chunks_removed=removed)
