"""The admin API over the knowledge layer: upsert, delete, list and query, as the CLI does.

Only admin keys (``HYBRID_GATEWAY_ADMIN_KEYS``) may call it; without them it is
off. Uploaded documents go through the same loaders, chunking and stale-chunk
removal as ``hybrid-gateway ingest``: each is written under its source name
to a private temporary directory and ingested from there.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.common import state_of
from gateway.errors import InvalidRequest, ServiceUnavailable, error_response, json_response
from gateway.pipeline.intake import authenticate_admin, read_json, validate
from gateway.state import GatewayState
from retrieval import KnowledgeStore, RetrievalConfigError, RetrievalError, delete_source, ingest_paths

_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".json", ".jsonl")
# Chroma's own rule for collection names, checked here so a bad name is the client's 400, not a store failure.
_COLLECTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]")
_IPV4 = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
_NAME_MAX = 255  # bytes in one path component on every file system the upload is written to


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Document(_Strict):
    source: str = Field(min_length=1, max_length=300)
    text: str


class Upsert(_Strict):
    documents: list[Document] = Field(min_length=1, max_length=1000)


class Query(_Strict):
    query: str = Field(min_length=1)
    k: int = Field(default=4, ge=1, le=50)



def _store(gateway: GatewayState) -> KnowledgeStore:
    if gateway.knowledge.store is None:
        raise ServiceUnavailable(f"The knowledge store is not available: {gateway.knowledge.problem}.")
    return gateway.knowledge.store


def _collection(name: str) -> str:
    if not _COLLECTION.fullmatch(name) or ".." in name or _IPV4.fullmatch(name):
        raise InvalidRequest(f"Collection name {name[:80]!r} is invalid: use 3-63 letters, digits, '.', '_' or '-', "
                             "starting and ending with a letter or digit, without '..', not an IPv4 address.",
                             param="collection", code="invalid_collection")
    return name


def _printable(source: str, param: str) -> str:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in source):
        raise InvalidRequest(f"Source {source[:80]!r} contains a control character.", param=param)
    return source


def _safe_source(source: str) -> PurePosixPath:
    """A source name as a relative path the upload can be written under, or a 400 saying why not."""
    path = PurePosixPath(_printable(source, "documents.source"))
    if path.is_absolute() or ".." in path.parts or path.suffix.lower() not in _SUFFIXES:
        raise InvalidRequest(f"Source {source!r} must be a relative path ending in one of {', '.join(_SUFFIXES)}.",
                             param="documents.source")
    if any(len(part.encode("utf-8")) > _NAME_MAX for part in path.parts):
        raise InvalidRequest(f"Source {source[:80]!r}...: each part of the path must be at most {_NAME_MAX} bytes.",
                             param="documents.source")
    return path


def _upload_paths(documents: list[Document]) -> list[PurePosixPath]:
    """Every document's path; refused when one would be both a file and another's directory."""
    paths = [_safe_source(document.source) for document in documents]
    files = set(paths)
    for path in paths:
        clash = next((parent for parent in path.parents if parent in files), None)
        if clash is not None:
            raise InvalidRequest(f"Source {str(path)!r} lies under {str(clash)!r}, which is also a document: "
                                 "one path cannot be a file and a directory.", param="documents.source")
    return paths


def _ingest(store: KnowledgeStore, collection: str, documents: list[Document]) -> dict[str, Any]:
    paths = _upload_paths(documents)
    with tempfile.TemporaryDirectory(prefix="hybrid-gateway-upload-") as directory:
        base = Path(directory)
        files = []
        for relative, document in zip(paths, documents, strict=True):
            path = base / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(document.text, encoding="utf-8")
            files.append(path)
        return ingest_paths(store, files, collection, base_dir=base).as_dict()


async def _admin(request: Request, work: Any) -> Response:
    """Authenticate, run the blocking ``work(store, collection, body)`` in a thread, render the store's errors."""
    gateway = state_of(request)
    try:
        authenticate_admin(request, gateway.settings)
        body = await read_json(request, gateway.settings) if request.method == "POST" else {}
        collection = _collection(request.path_params["collection"])
        store = _store(gateway)
        result = await asyncio.to_thread(work, store, collection, body, request.path_params)
        return json_response(result)
    except RetrievalConfigError as exc:  # the request asked for something the store cannot do
        return error_response(InvalidRequest(f"The knowledge store refused the request: {exc}"))
    except RetrievalError as exc:
        return error_response(ServiceUnavailable(f"The knowledge store failed: {exc}"))


async def upsert(request: Request) -> Response:
    def work(store: KnowledgeStore, collection: str, body: dict[str, Any], _: Any) -> dict[str, Any]:
        return _ingest(store, collection, validate(Upsert, body).documents)
    return await _admin(request, work)


async def remove(request: Request) -> Response:
    def work(store: KnowledgeStore, collection: str, _: Any, params: dict[str, Any]) -> dict[str, Any]:
        return delete_source(store, collection, _printable(params["source"], "source")).as_dict()
    return await _admin(request, work)


async def sources(request: Request) -> Response:
    def work(store: KnowledgeStore, collection: str, _: Any, __: Any) -> dict[str, Any]:
        return {"collection": collection, "sources": store.sources(collection)}
    return await _admin(request, work)


async def query(request: Request) -> Response:
    def work(store: KnowledgeStore, collection: str, body: dict[str, Any], _: Any) -> dict[str, Any]:
        asked = validate(Query, body)
        return {"hits": [hit.as_dict() for hit in store.query(collection, asked.query, asked.k)]}
    return await _admin(request, work)


_BASE = "/admin/knowledge/{collection}"
endpoints = [
    Route(f"{_BASE}/documents", upsert, methods=["POST"]),
    Route(f"{_BASE}/sources", sources, methods=["GET"]),
    Route(_BASE + "/sources/{source:path}", remove, methods=["DELETE"]),
    Route(f"{_BASE}/query", query, methods=["POST"]),
]
