"""The knowledge layer: Chroma-backed retrieval that grounds answers in current documents.

What other packages may use is listed in ``__all__``; everything else is
internal. chromadb, onnxruntime and tokenizers load only when a store or the
local encoder is first used, so importing this package is cheap. This package
never imports ``gateway``.
"""

from retrieval.augment import Augmentation, AugmentConfig, augment, ground, passages
from retrieval.batcher import SearchBatcher
from retrieval.chunking import Chunk, ChunkingConfig
from retrieval.cli import add_cli
from retrieval.demo import DEMO_COLLECTION, ensure_demo_corpus
from retrieval.embeddings import Encoder, MiniLMEncoder, RemoteEncoder
from retrieval.errors import (
    DocumentError,
    RetrievalConfigError,
    RetrievalError,
    RetrievalTimeout,
    RetrievalUnavailable,
)
from retrieval.ingest import FileFailure, IngestReport, delete_source, ingest_paths
from retrieval.store import Hit, KnowledgeStore, Search, StoredChunk, chroma_dir, default_data_dir

__all__ = [
    "DEMO_COLLECTION",
    "AugmentConfig",
    "Augmentation",
    "Chunk",
    "ChunkingConfig",
    "DocumentError",
    "Encoder",
    "FileFailure",
    "Hit",
    "IngestReport",
    "KnowledgeStore",
    "MiniLMEncoder",
    "RemoteEncoder",
    "RetrievalConfigError",
    "RetrievalError",
    "RetrievalTimeout",
    "RetrievalUnavailable",
    "Search",
    "SearchBatcher",
    "StoredChunk",
    "add_cli",
    "augment",
    "chroma_dir",
    "default_data_dir",
    "delete_source",
    "ensure_demo_corpus",
    "ground",
    "ingest_paths",
    "passages",
]
