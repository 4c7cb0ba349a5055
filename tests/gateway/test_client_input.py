"""Whatever a client sends, the answer is a 4xx in OpenAI's envelope (or a 499 for a client that left),
never a 500, and nothing is counted or logged as a server error."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from gateway.app import create_app
from gateway.pipeline.intake import client_request_id
from gateway.settings import Settings, digest_key
from tests.support.chat import chat
from tests.support.envelope import assert_envelope
from tests.support.fake_upstream import FakeUpstream
from tests.support.knowledge import wait_knowledge_loaded
from tests.support.metrics import scrape
from tests.support.polling import poll
from tests.support.servers import ServerThread

MESSAGES = [{"role": "user", "content": "hi"}]
ADMIN = {"authorization": "Bearer admin-secret"}


def nested(depth: int) -> Any:
    """A value whose arrays nest ``depth`` levels, as the body's ``metadata.deep`` (body = level 1)."""
    value: Any = 1
    for _ in range(depth - 2):  # the body object and ``metadata`` are two levels
        value = [value]
    return value


def test_json_nested_past_the_limit_is_400_not_a_failed_serialisation(gateway: ServerThread,
                                                                       fake: FakeUpstream) -> None:
    # 300 levels parse (orjson reads 1024) but cannot be serialised upstream (orjson writes 255).
    error = assert_envelope(chat(gateway, "chat", metadata={"deep": nested(300)}), 400, "invalid_json")
    assert "64 levels" in error["message"]
    assert_envelope(chat(gateway, "chat", metadata={"deep": nested(65)}), 400, "invalid_json")
    assert fake.received == []
    assert chat(gateway, "chat", metadata={"deep": nested(64)}).status_code == 200  # the documented limit itself passes
    assert scrape(gateway.url, "gateway_requests_total", status="500") == 0
    assert scrape(gateway.url, "gateway_requests_total", status="400") == 2


def test_a_client_that_leaves_mid_body_is_a_499_logged_at_info(gateway: ServerThread, fake: FakeUpstream,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hybrid_gateway")
    with socket.create_connection(("127.0.0.1", gateway.port)) as raw:
        raw.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                    b"x-request-id: leaver-1\r\ncontent-length: 1000\r\n\r\n{\"model\": \"chat\", ")
    poll(lambda: scrape(gateway.url, "gateway_requests_total", status="499") == 1, "the 499 to be counted")
    assert scrape(gateway.url, "gateway_requests_total", status="500") == 0
    assert scrape(gateway.url, "gateway_errors_total", code="client_closed_request") == 1
    mine = [r for r in caplog.records if r.name == "hybrid_gateway" and "leaver-1" in r.getMessage()]
    assert [r.levelno for r in mine] == [logging.INFO] and mine[0].exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert fake.received == []


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory,
          fake_server: tuple[FakeUpstream, ServerThread]) -> Iterator[ServerThread]:
    root = tmp_path_factory.mktemp("admin")
    settings = Settings(policies_dir=Path(__file__).resolve().parents[2] / "policies" / "default",
                        data_dir=root / "var", admin_key_digests=frozenset({digest_key("admin-secret")}))
    server = ServerThread(create_app(settings)).start()
    wait_knowledge_loaded(server.url)
    yield server
    server.stop()


def upsert(admin: ServerThread, *sources: str, collection: str = "notes") -> httpx.Response:
    documents = [{"source": source, "text": "# Notes\n\nTea is steeped for three minutes.\n"} for source in sources]
    return httpx.post(f"{admin.url}/admin/knowledge/{collection}/documents", json={"documents": documents},
                      headers=ADMIN, timeout=60)


@pytest.mark.parametrize(("sources", "collection", "param", "words"), [
    (["bad\x00name.md"], "notes", "documents.source", "control character"),
    ([("n" * 297) + ".md"], "notes", "documents.source", "at most 255 bytes"),
    (["guide.md", "guide.md/part.md"], "notes", "documents.source", "cannot be a file and a directory"),
    (["guide.md"], "x", "collection", "Collection name 'x' is invalid"),
    (["guide.md"], "bad..name", "collection", "is invalid"),
    (["guide.md"], "192.168.0.1", "collection", "is invalid"),
])
def test_knowledge_admin_refuses_bad_names_with_400(admin: ServerThread, sources: list[str], collection: str,
                                                    param: str, words: str) -> None:
    error = assert_envelope(upsert(admin, *sources, collection=collection), 400, param=param)
    assert words in error["message"]


def test_knowledge_admin_bad_json_and_bad_names_elsewhere_are_4xx(admin: ServerThread) -> None:
    deep = b"[" * 5000 + b"]" * 5000
    assert_envelope(httpx.post(admin.url + "/admin/knowledge/notes/documents", content=deep, timeout=30,
                               headers={**ADMIN, "content-type": "application/json"}), 400, "invalid_json")
    assert_envelope(httpx.get(admin.url + "/admin/knowledge/x/sources", headers=ADMIN), 400, param="collection")
    assert_envelope(httpx.delete(admin.url + "/admin/knowledge/notes/sources/a%00b.md", headers=ADMIN), 400,
                    param="source")
    assert upsert(admin, "guide.md", "more/guide.md").status_code == 200  # a name reused in a subdirectory is fine
    listed = httpx.get(admin.url + "/admin/knowledge/notes/sources", headers=ADMIN).json()["sources"]
    assert set(listed) == {"guide.md", "more/guide.md"}


@pytest.mark.parametrize(("given", "echoed"), [("trace-1.a:b", True), ("trace-1\n", False), ("a b", False),
                                               ("x" * 129, False), ("", False)])
def test_request_id_is_echoed_only_when_the_whole_value_is_safe(given: str, echoed: bool) -> None:
    # No HTTP/1.1 parser delivers a newline inside a header value, so the request is built as the ASGI scope
    # another server (or a proxy speaking HTTP/2) could hand the app.
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"x-request-id", given.encode())]}
    kept = client_request_id(Request(scope))
    assert kept == (given if echoed else None)
