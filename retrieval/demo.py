"""The bundled demo knowledge: product docs of the fictional Lumen Freight.

Lets a fresh gateway show cited answers with no setup. Ingestion runs only
when the collection is empty, so a restart costs one count query; to refresh
an existing demo collection, re-ingest the directory with the CLI.
"""

from __future__ import annotations

from pathlib import Path

from retrieval.ingest import IngestReport, ingest_paths
from retrieval.store import KnowledgeStore

DEMO_COLLECTION = "demo-docs"


def demo_corpus_dir() -> Path:
    """The directory of the demo Markdown files shipped inside this package."""
    return Path(__file__).with_name("demo_corpus")


def ensure_demo_corpus(store: KnowledgeStore, collection: str = DEMO_COLLECTION) -> IngestReport | None:
    """Ingest the demo corpus if ``collection`` is empty; None when it already had content."""
    if store.count(collection):
        return None
    directory = demo_corpus_dir()
    return ingest_paths(store, [directory], collection, base_dir=directory)
