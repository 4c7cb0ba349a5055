"""Command-line verbs for the knowledge layer, mounted on the main CLI.

``hybrid-gateway`` (gateway/cli/main.py) calls :func:`add_cli` with its
sub-parsers. Each verb sets ``command``, the main CLI's convention: a callable
taking the parsed arguments and returning the exit status (0 ok, 1 failure,
2 usage error). Results go to stdout as JSON; progress and errors to stderr.
``knowledge query``/``list`` exit 1 when the store, collection or source they
were asked about does not exist: an empty listing would look like an answer.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from retrieval.errors import RetrievalError
from retrieval.ingest import IngestReport, delete_source, ingest_paths
from retrieval.store import DATA_DIR_ENV, KnowledgeStore, chroma_dir

_BAR_WIDTH = 30
_BAR_MIN_FILES = 10  # shorter runs finish before a bar is worth drawing


class ProgressBar:
    """``[#####.....] 12/40 docs/sla.md`` redrawn in place on a terminal; silent otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._enabled = stream.isatty()

    def __call__(self, done: int, total: int, source: str) -> None:
        if not self._enabled or total < _BAR_MIN_FILES:
            return
        filled = _BAR_WIDTH * done // total
        label = source if len(source) <= 40 else "..." + source[-37:]
        self._stream.write(f"\r[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {done}/{total} {label:<40}")
        if done == total:
            self._stream.write("\n")
        self._stream.flush()


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--collection", required=True, help="collection name (3-512 chars of [a-zA-Z0-9._-])")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--data-dir",
        type=Path,
        help=f"the gateway's data directory (default: ${DATA_DIR_ENV} or ./var); "
        "the embedded store is its chroma/ subdirectory, the one `serve` reads",
    )
    where.add_argument("--chroma-url", help="Chroma server URL, e.g. http://127.0.0.1:8000")


def _store(args: argparse.Namespace) -> KnowledgeStore:
    return KnowledgeStore.open(data_dir=args.data_dir, chroma_url=args.chroma_url)


class _NotFound(RetrievalError):
    """What a read-only verb was asked about does not exist (exit 1, said on stderr)."""


def _existing_store(args: argparse.Namespace) -> KnowledgeStore:
    """The store, refusing a missing embedded directory (opening it would create an empty one)."""
    if not args.chroma_url and not (directory := chroma_dir(args.data_dir)).is_dir():
        raise _NotFound(f"no knowledge store at {directory} (ingest first, or pass --data-dir / --chroma-url)")
    store = _store(args)
    if not store.count(args.collection):
        raise _NotFound(f"collection {args.collection!r} does not exist or is empty in {store.location}")
    return store


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def _run_ingest(args: argparse.Namespace) -> int:
    if not args.paths and not args.delete:
        print("ingest: give PATH... to ingest and/or --delete SOURCE", file=sys.stderr)
        return 2
    if args.name is not None and len(args.paths) != 1:
        print("ingest: --name names a single PATH", file=sys.stderr)
        return 2
    try:
        store = _store(args)
        report = IngestReport()
        for source in args.delete:
            removed = delete_source(store, args.collection, source)
            report.sources_removed += removed.sources_removed
            report.chunks_removed += removed.chunks_removed
        if args.paths:
            done = ingest_paths(
                store, args.paths, args.collection, name=args.name, progress=ProgressBar(sys.stderr)
            )
            done.sources_removed[:0] = report.sources_removed
            done.chunks_removed += report.chunks_removed
            report = done
    except RetrievalError as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 1
    _print_json(report.as_dict())
    for failure in report.files_failed:
        print(f"ingest: skipped {failure.source}: {failure.reason}", file=sys.stderr)
    return 0 if report.ok else 1


def _run_query(args: argparse.Namespace) -> int:
    try:
        hits = _existing_store(args).query(args.collection, args.text, k=args.k)
    except RetrievalError as exc:
        print(f"knowledge query: {exc}", file=sys.stderr)
        return 1
    _print_json([hit.as_dict() for hit in hits])
    return 0


def _run_list(args: argparse.Namespace) -> int:
    try:
        store = _existing_store(args)
        if args.source is None:
            listing: Any = [{"source": s, "chunks": n} for s, n in store.sources(args.collection).items()]
        else:
            listing = [
                {
                    "chunk_id": c.id,
                    "position": c.metadata.get("position"),
                    "headings": c.metadata.get("headings"),
                    "text": c.text,
                }
                for c in store.chunks(args.collection, args.source)
            ]
            if not listing:
                raise _NotFound(f"no source {args.source!r} in collection {args.collection!r}")
    except RetrievalError as exc:
        print(f"knowledge list: {exc}", file=sys.stderr)
        return 1
    _print_json(listing)
    return 0


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``ingest`` and ``knowledge {query,list}`` on an argparse sub-parsers object."""
    ingest = subparsers.add_parser(
        "ingest",
        help="load files into a knowledge collection",
        description="Ingest files and directories (recursively). Re-ingesting replaces changed sources "
        "and removes chunks and files that vanished. Prints a JSON report; exit 1 if any file failed.",
    )
    _add_store_options(ingest)
    ingest.add_argument(
        "--name",
        help="store a single PATH under this name instead of its own file or directory name "
        "(sources are named from the ingested root, never by absolute path)",
    )
    ingest.add_argument(
        "--delete", metavar="SOURCE", action="append", default=[], help="remove a source (repeatable)"
    )
    ingest.add_argument(
        "paths", nargs="*", type=Path, metavar="PATH", help=".md .txt .html .pdf .json .jsonl files or dirs"
    )
    ingest.set_defaults(command=_run_ingest)

    knowledge = subparsers.add_parser("knowledge", help="inspect a knowledge collection")
    verbs = knowledge.add_subparsers(dest="knowledge_command", required=True)
    query = verbs.add_parser("query", help="print the chunks most similar to TEXT as JSON")
    _add_store_options(query)
    query.add_argument("--k", type=int, default=5, help="number of hits (default 5)")
    query.add_argument("text")
    query.set_defaults(command=_run_query)
    listing = verbs.add_parser("list", help="print the sources (or one source's chunks) as JSON")
    _add_store_options(listing)
    listing.add_argument("--source", help="list this source's chunks instead of all sources")
    listing.set_defaults(command=_run_list)
