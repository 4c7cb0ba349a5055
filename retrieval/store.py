"""The Chroma-backed knowledge store: embedded on disk or a Chroma server.

One ``KnowledgeStore`` serves many collections. It owns the encoder, so every
vector in a collection comes from one model: the model id is written into the
collection's metadata when it is created and checked each time it is opened.
Collections use cosine space; a hit's ``score`` is ``1 - distance``, i.e. the
cosine similarity (1 is identical, around 0 unrelated).

chromadb is imported inside methods: it takes about half a second to import
and most importers of :mod:`retrieval` never touch a store. Chroma and HTTP
failures are translated to :class:`RetrievalUnavailable` here, at the boundary.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload
from urllib.parse import urlsplit

import numpy as np

from retrieval.chunking import Chunk
from retrieval.documents import Scalar
from retrieval.embeddings.base import Encoder
from retrieval.errors import RetrievalConfigError, RetrievalError, RetrievalUnavailable
from retrieval.tokens import token_counter_for

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
    from chromadb.api.types import Embeddable, EmbeddingFunction
    from chromadb.config import Settings

#: Environment variable naming the embedded store's directory.
DATA_DIR_ENV = "HYBRID_GATEWAY_DATA_DIR"
_MODEL_KEY = "embedding_model"
_PAGE = 1000  # Chroma get() page size: bounded memory on large collections.


def default_data_dir() -> Path:
    """``$HYBRID_GATEWAY_DATA_DIR``, else ``./var``: the gateway's data directory, as in its settings."""
    return Path(os.environ.get(DATA_DIR_ENV) or "var")


def chroma_dir(data_dir: Path | str | None = None) -> Path:
    """The embedded store inside a data directory (default :func:`default_data_dir`).

    The one place that says where embedded Chroma lives, used by the CLI and the
    gateway alike: when each joined the path itself, documents ingested by the
    CLI went to a directory the server never read.
    """
    return Path(data_dir or default_data_dir()) / "chroma"


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk, its cosine similarity to the query and its length in the encoder's tokens.

    ``tokens`` is counted with the search, in the worker thread that runs it, so a
    caller budgeting context never tokenizes on its event loop (about 0.6 ms a chunk).
    """

    source: str
    chunk_id: str
    score: float
    text: str
    metadata: Mapping[str, Scalar]
    tokens: int

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape the CLI prints and the gateway can return as citations."""
        return {
            "source": self.source,
            "chunk_id": self.chunk_id,
            "score": round(self.score, 4),
            "text": self.text,
        }


@dataclass(frozen=True)
class Search:
    """One similarity search: the ``k`` chunks of ``collection`` nearest to ``text``, optionally filtered."""

    collection: str
    text: str
    k: int = 5
    where: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class StoredChunk:
    """A chunk as stored, for listings and incremental ingestion."""

    id: str
    source: str
    text: str
    metadata: Mapping[str, Scalar]


@contextmanager
def _upstream(action: str) -> Iterator[None]:
    """Translate chromadb / transport failures into RetrievalUnavailable, most specific first."""
    import httpx
    from chromadb.errors import ChromaError, InvalidArgumentError, NotFoundError

    try:
        yield
    except (InvalidArgumentError, NotFoundError) as exc:
        raise RetrievalConfigError(f"{action}: {exc}") from exc
    except (ChromaError, httpx.HTTPError, ConnectionError, TimeoutError) as exc:
        raise RetrievalUnavailable(f"{action}: {exc}") from exc


class KnowledgeStore:
    """Chunks with embeddings in Chroma collections, searched by cosine similarity."""

    def __init__(self, connect: Callable[[], ClientAPI], encoder: Encoder, *, location: str) -> None:
        """Prefer :meth:`embedded`, :meth:`server` or :meth:`open`; ``connect`` runs on first use."""
        self.encoder = encoder
        self.location = location
        self._connect = connect
        self._client: ClientAPI | None = None
        self._collections: dict[str, Collection] = {}
        self._lock = threading.Lock()

    @classmethod
    def embedded(cls, path: Path | str, encoder: Encoder | None = None) -> KnowledgeStore:
        """A store in a local directory (chromadb.PersistentClient), created if missing."""

        def connect() -> ClientAPI:
            import chromadb

            return chromadb.PersistentClient(path=str(path), settings=_settings())

        return cls(connect, encoder or _default_encoder(), location=str(path))

    @classmethod
    def server(cls, url: str, encoder: Encoder | None = None) -> KnowledgeStore:
        """A store on a Chroma server, e.g. ``http://127.0.0.1:8000``; connects on first use."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RetrievalConfigError(f"Chroma URL must be http(s)://host[:port], got {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 8000)

        def connect() -> ClientAPI:
            import chromadb

            try:
                return chromadb.HttpClient(
                    host=parts.hostname or "", port=port, ssl=parts.scheme == "https", settings=_settings()
                )
            except ValueError as exc:  # chromadb reports a refused connection as ValueError
                raise RetrievalUnavailable(f"Chroma server at {url}: {exc}") from exc

        return cls(connect, encoder or _default_encoder(), location=url)

    @classmethod
    def open(
        cls, data_dir: Path | str | None = None, chroma_url: str | None = None, encoder: Encoder | None = None
    ) -> KnowledgeStore:
        """The server when ``chroma_url`` is given, else the embedded store under ``data_dir`` (see chroma_dir)."""
        if chroma_url:
            return cls.server(chroma_url, encoder)
        return cls.embedded(chroma_dir(data_dir), encoder)

    # -- writing ---------------------------------------------------------------

    def upsert(self, collection: str, chunks: Sequence[Chunk], embeddings: np.ndarray | None = None) -> None:
        """Write chunks; ``embeddings`` (one row per chunk) skips encoding when already known."""
        if not chunks:
            return
        vectors = self.encoder.embed([c.text for c in chunks]) if embeddings is None else embeddings
        with _upstream(f"upsert into {collection!r}"):
            self._collection(collection, create=True).upsert(
                ids=[c.id for c in chunks],
                documents=[c.text for c in chunks],
                metadatas=[dict(c.metadata) for c in chunks],
                embeddings=np.asarray(vectors, dtype=np.float32),
            )

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        """Remove chunks by id (missing ids are ignored)."""
        if ids and (col := self._collection(collection)) is not None:
            with _upstream(f"delete from {collection!r}"):
                col.delete(ids=list(ids))

    def delete_source(self, collection: str, source: str) -> int:
        """Remove every chunk of ``source``; returns how many there were."""
        ids = list(self.chunk_hashes(collection, source))
        self.delete(collection, ids)
        return len(ids)

    # -- reading ---------------------------------------------------------------

    def count(self, collection: str) -> int:
        """Number of chunks (0 for a collection that does not exist)."""
        col = self._collection(collection)
        if col is None:
            return 0
        with _upstream(f"count {collection!r}"):
            return col.count()

    def sources(self, collection: str) -> dict[str, int]:
        """Each source in the collection with its number of chunks, sorted by name."""
        counts: dict[str, int] = {}
        for _, metadata, _ in self._scan(collection, include_documents=False):
            source = str(metadata.get("source", ""))
            counts[source] = counts.get(source, 0) + 1
        return dict(sorted(counts.items()))

    def chunks(self, collection: str, source: str | None = None) -> list[StoredChunk]:
        """Stored chunks (all, or of one source), in source and position order."""
        where = {"source": source} if source is not None else None
        found = [
            StoredChunk(id_, str(metadata.get("source", "")), text or "", metadata)
            for id_, metadata, text in self._scan(collection, where=where, include_documents=True)
        ]
        return sorted(found, key=lambda c: (c.source, int(c.metadata.get("position", 0))))

    def chunk_hashes(self, collection: str, source: str) -> dict[str, str]:
        """Chunk id -> content hash for one source (what incremental ingestion compares)."""
        return {
            id_: str(metadata.get("content_hash", ""))
            for id_, metadata, _ in self._scan(collection, where={"source": source}, include_documents=False)
        }

    def embeddings(self, collection: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors by id, so moved-but-unchanged content is not encoded again."""
        col = self._collection(collection)
        if not ids or col is None:
            return {}
        with _upstream(f"read embeddings from {collection!r}"):
            got = col.get(ids=list(ids), include=["embeddings"])
        vectors = got["embeddings"] if got["embeddings"] is not None else []
        return {id_: np.asarray(v, dtype=np.float32) for id_, v in zip(got["ids"], vectors, strict=True)}

    def query(
        self, collection: str, text: str, k: int = 5, where: Mapping[str, Any] | None = None
    ) -> list[Hit]:
        """The ``k`` chunks most similar to ``text`` (best first), optionally filtered by metadata."""
        found = self.search_many([Search(collection, text, k, where)])[0]
        if isinstance(found, RetrievalError):
            raise found
        return found

    def search_many(self, searches: Sequence[Search]) -> list[list[Hit] | RetrievalError]:
        """Each search's hits, or the error of its collection, from one encoder call for every text.

        Batching is where a CPU encoder gains throughput, and Chroma answers several
        query embeddings in one call, so searches sharing a collection and filter go
        as one query (at the largest ``k`` of the group, each cut to its own). An
        error of one collection is that group's answer; an encoder failure raises.
        """
        answers: list[list[Hit] | RetrievalError] = [[] for _ in searches]
        live = [i for i, search in enumerate(searches) if search.text.strip()]
        if not live:
            return answers
        vectors = self.encoder.embed([searches[i].text for i in live])
        groups: dict[tuple[str, str], list[int]] = {}
        for row, i in enumerate(live):
            search = searches[i]
            groups.setdefault((search.collection, json.dumps(search.where or {}, sort_keys=True, default=str)),
                              []).append(row)
        for rows in groups.values():
            members = [live[row] for row in rows]
            try:
                found: Sequence[list[Hit] | RetrievalError] = self._search_group(
                    [searches[i] for i in members], vectors[rows]
                )
            except RetrievalError as exc:
                found = [exc] * len(members)
            for i, hits in zip(members, found, strict=True):
                answers[i] = hits
        return answers

    def _search_group(self, searches: Sequence[Search], vectors: np.ndarray) -> list[list[Hit]]:
        """One Chroma query for searches of one collection and filter."""
        first = searches[0]
        col = self._collection(first.collection)
        if col is None:
            return [[] for _ in searches]
        with _upstream(f"query {first.collection!r}"):
            result = col.query(
                query_embeddings=vectors,
                n_results=max(search.k for search in searches),
                where=dict(first.where) if first.where else None,
                include=["documents", "metadatas", "distances"],
            )
        docs, metas, dists = result["documents"] or [], result["metadatas"] or [], result["distances"] or []
        found = [
            list(zip(result["ids"][row], docs[row], metas[row], dists[row], strict=True))[: search.k]
            for row, search in enumerate(searches)
        ]
        lengths = iter(token_counter_for(self.encoder)([doc or "" for rows in found for _, doc, _, _ in rows]))
        return [
            [
                Hit(str(m.get("source", "")), id_, 1.0 - float(d), doc or "", _scalars(m), next(lengths))
                for id_, doc, m, d in rows
            ]
            for rows in found
        ]

    # -- internals -------------------------------------------------------------

    def _scan(
        self, collection: str, *, where: Mapping[str, Any] | None = None, include_documents: bool
    ) -> Iterator[tuple[str, Mapping[str, Any], str | None]]:
        """(id, metadata, text) of matching chunks, paged."""
        col = self._collection(collection)
        if col is None:
            return
        include: list[Any] = ["metadatas", "documents"] if include_documents else ["metadatas"]
        offset = 0
        while True:
            with _upstream(f"read {collection!r}"):
                page = col.get(
                    where=dict(where) if where else None, include=include, limit=_PAGE, offset=offset
                )
            metadatas = page["metadatas"] or []
            texts = (
                page["documents"] if include_documents and page["documents"] else [None] * len(page["ids"])
            )
            yield from zip(page["ids"], metadatas, texts, strict=True)
            if len(page["ids"]) < _PAGE:
                return
            offset += _PAGE

    def _client_api(self) -> ClientAPI:
        with self._lock:
            if self._client is None:
                with _upstream(f"connect to Chroma at {self.location}"):
                    self._client = self._connect()
            return self._client

    @overload
    def _collection(self, name: str, *, create: Literal[True]) -> Collection: ...

    @overload
    def _collection(self, name: str, *, create: bool = False) -> Collection | None: ...

    def _collection(self, name: str, *, create: bool = False) -> Collection | None:
        """Open (or create) a collection once and keep it; None if absent and not creating."""
        if (cached := self._collections.get(name)) is not None:
            return cached
        from chromadb.errors import NotFoundError

        from retrieval.embeddings.chroma import EncoderEmbeddingFunction

        client = self._client_api()
        # chromadb types the parameter EmbeddingFunction[Embeddable] (texts or images), which no
        # text-only function satisfies; its own default carries the same ignore (chroma-core/chroma#5241)
        function: EmbeddingFunction[Embeddable]
        function = EncoderEmbeddingFunction(self.encoder)  # type: ignore[assignment]
        with _upstream(f"open collection {name!r}"):
            try:
                if create:
                    col = client.get_or_create_collection(
                        name,
                        embedding_function=function,
                        metadata={"hnsw:space": "cosine", _MODEL_KEY: self.encoder.model_id},
                    )
                else:
                    col = client.get_collection(name, embedding_function=function)
            except NotFoundError:
                return None
        stored_model = (col.metadata or {}).get(_MODEL_KEY)
        if stored_model != self.encoder.model_id:
            raise RetrievalConfigError(
                f"collection {name!r} holds vectors of {stored_model!r} but this store encodes with "
                f"{self.encoder.model_id!r}; ingest into another collection"
            )
        self._collections[name] = col
        return col


def _settings() -> Settings:
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False)


def _scalars(metadata: Mapping[str, object]) -> dict[str, Scalar]:
    """A chunk's metadata as `upsert` wrote it: Chroma's type also admits lists, sparse vectors and None."""
    return {key: value for key, value in metadata.items() if isinstance(value, str | int | float)}


def _default_encoder() -> Encoder:
    from retrieval.embeddings.minilm import MiniLMEncoder

    return MiniLMEncoder()
