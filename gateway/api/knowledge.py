"""The admin API over the knowledge layer: upsert, delete, list and query, as the CLI does.

Only admin keys (``HYBRID_GATEWAY_ADMIN_KEYS``) may call it; without them it is
off. Uploaded documents go through the same loaders, chunking and stale-chunk
removal as ``hybrid-gateway ingest``: each is written under its source name
to a private temporary directory and ingested from there.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.common import state_of
from gateway.errors import GatewayError, InvalidRequest, ServiceUnavailable, error_response
from gateway.intake import authenticate_admin, read_json, validate
from gateway.state import GatewayState
from retrieval import KnowledgeStore, RetrievalError, delete_source, ingest_paths

_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".json", ".jsonl")


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


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _store(gateway: GatewayState) -> KnowledgeStore:
    if gateway.knowledge.store is None:
        raise ServiceUnavailable(f"The knowledge store is not available: {gateway.knowledge.problem}.")
    return gateway.knowledge.store


def _safe_source(source: str) -> PurePosixPath:
    path = PurePosixPath(source)
    if path.is_absolute() or ".." in path.parts or path.suffix.lower() not in _SUFFIXES:
        raise InvalidRequest(f"Source {source!r} must be a relative path ending in one of {', '.join(_SUFFIXES)}.",
                             param="documents.source")
    return path


def _ingest(store: KnowledgeStore, collection: str, documents: list[Document]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hybrid-gateway-upload-") as directory:
        base = Path(directory)
        files = []
        for document in documents:
            path = base / _safe_source(document.source)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(document.text, encoding="utf-8")
            files.append(path)
        return ingest_paths(store, files, collection, base_dir=base).as_dict()


async def _admin(request: Request, work: Any) -> Response:
    """Authenticate, run the blocking ``work(store, collection, body)`` in a thread, render errors."""
    gateway = state_of(request)
    try:
        authenticate_admin(request, gateway.settings)
        body = await read_json(request, gateway.settings.max_body_bytes) if request.method == "POST" else {}
        store = _store(gateway)
        result = await asyncio.to_thread(work, store, request.path_params["collection"], body,
                                         request.path_params)
        return _json(result)
    except RetrievalError as exc:
        return error_response(ServiceUnavailable(f"The knowledge store failed: {exc}"))
    except GatewayError as exc:
        return error_response(exc)


async def upsert(request: Request) -> Response:
    def work(store: KnowledgeStore, collection: str, body: dict[str, Any], _: Any) -> dict[str, Any]:
        return _ingest(store, collection, validate(Upsert, body).documents)
    return await _admin(request, work)


async def remove(request: Request) -> Response:
    def work(store: KnowledgeStore, collection: str, _: Any, params: dict[str, Any]) -> dict[str, Any]:
        return delete_source(store, collection, params["source"]).as_dict()
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
routes = [
    Route(f"{_BASE}/documents", upsert, methods=["POST"]),
    Route(f"{_BASE}/sources", sources, methods=["GET"]),
    Route(_BASE + "/sources/{source:path}", remove, methods=["DELETE"]),
    Route(f"{_BASE}/query", query, methods=["POST"]),
]
