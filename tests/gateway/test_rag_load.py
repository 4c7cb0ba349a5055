"""Knowledge under load and under failure, through the real gateway: queued not dropped; misses marked and counted.

Concurrent requests all get their context (the retrieval queue waits instead of
failing); a hung Chroma server (SIGSTOP) costs a request no more than its
deadline and is answered, marked ``timeout``, counted and logged; a Chroma
server that is gone is an outage, marked ``unavailable``, counted and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.settings import Settings
from retrieval import KnowledgeStore, chroma_dir, ingest_paths
from tests.conftest import BIG_MODEL, POLICY
from tests.support.chat import chat
from tests.support.chroma_server import ChromaServer
from tests.support.fake_upstream import Action, FakeUpstream
from tests.support.knowledge import wait_knowledge_loaded
from tests.support.metrics import scrape
from tests.support.polling import poll
from tests.support.servers import ServerThread

FACTS = {
    "shipping.md": "# Orbital Tea shipping\n\nOrbital Tea ships loose-leaf tea to Mars colonies every 26 months.\n",
    "returns.md": "# Orbital Tea returns\n\nUnopened tins of Orbital Tea can be returned within 45 days.\n",
    "brewing.md": "# Brewing Orbital Tea\n\nBrew Orbital Tea's green blends at 80 degrees for two minutes.\n",
}
QUESTIONS = ["When can I get Orbital Tea delivered on Mars?", "How long do I have to return Orbital Tea tins?",
             "At what temperature should Orbital Tea's green tea be brewed?"]
# A knowledge timeout far above anything the queue needs, so only a queue that drops could fail the load test.
ROUTE = """
version: 1
routes:
  kb:
    deadline_s: {deadline_s}
    arms:
      prompted:
        target: big
        knowledge: {{collection: facts, top_k: 2, min_score: 0.3, timeout_ms: {timeout_ms}}}
"""


def policies(root: Path, fake_url: str, deadline_s: float = 60, timeout_ms: int = 10_000) -> Path:
    directory = root / "policies"
    directory.mkdir()
    (directory / "base.yaml").write_text(POLICY.format(url=fake_url))
    (directory / "kb.yaml").write_text(ROUTE.format(deadline_s=deadline_s, timeout_ms=timeout_ms))
    return directory


def ingest(store: KnowledgeStore, root: Path) -> None:
    docs = root / "docs"
    docs.mkdir()
    for name, text in FACTS.items():
        (docs / name).write_text(text)
    assert ingest_paths(store, [docs], "facts", base_dir=docs).ok


def ask(server: ServerThread, question: str = QUESTIONS[0], timeout_s: float = 30) -> httpx.Response:
    return chat(server, "kb", question, timeout_s=timeout_s, expect=200)


def rag_count(server: ServerThread, result: str) -> float:
    return scrape(server.url, "gateway_rag_requests_total", route="kb", result=result)


@pytest.fixture
def embedded(tmp_path: Path, fake_server: tuple[FakeUpstream, ServerThread]) -> Iterator[ServerThread]:
    ingest(KnowledgeStore.embedded(chroma_dir(tmp_path / "var")), tmp_path)
    settings = Settings(policies_dir=policies(tmp_path, fake_server[1].url), data_dir=tmp_path / "var")
    server = ServerThread(create_app(settings)).start()
    try:
        assert wait_knowledge_loaded(server.url, timeout_s=60)["checks"]["knowledge"] == "ok"
        yield server
    finally:
        server.stop()


def test_32_concurrent_requests_all_get_their_context(embedded: ServerThread, fake: FakeUpstream) -> None:
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(
                client.post(embedded.url + "/v1/chat/completions",
                            json={"model": "kb", "messages": [{"role": "user", "content": QUESTIONS[i % 3]}]})
                for i in range(32)))

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 32
    assert [r.headers["x-gateway-rag"] for r in responses] == ["hit"] * 32
    assert all(float(r.headers["x-gateway-rag-ms"]) > 0 for r in responses)  # what retrieval added, queue included
    assert [r.headers["x-gateway-sources"].split(",")[0] for r in responses] == [
        ("shipping.md", "returns.md", "brewing.md")[i % 3] for i in range(32)]
    assert rag_count(embedded, "hit") == 32 and rag_count(embedded, "unavailable") == 0


@contextlib.contextmanager
def on_chroma_server(tmp_path: Path, fake_url: str, deadline_s: float) -> Iterator[tuple[ChromaServer, ServerThread]]:
    """A ready gateway whose `kb` route (knowledge timeout 1 s) searches a Chroma server the test can freeze."""
    with ChromaServer() as chroma:
        assert chroma.process is not None
        ingest(KnowledgeStore.server(chroma.url), tmp_path)
        settings = Settings(policies_dir=policies(tmp_path, fake_url, deadline_s=deadline_s, timeout_ms=1000),
                            data_dir=tmp_path / "var", chroma_url=chroma.url)
        server = ServerThread(create_app(settings)).start()
        try:
            assert wait_knowledge_loaded(server.url, timeout_s=60)["checks"]["knowledge"] == "ok"
            yield chroma, server
        finally:
            server.stop()


@contextlib.contextmanager
def frozen(chroma: ChromaServer) -> Iterator[None]:
    """Chroma hung: connections are accepted, nothing answers."""
    assert chroma.process is not None
    chroma.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        chroma.process.send_signal(signal.SIGCONT)


def test_a_hung_then_lost_chroma_is_answered_by_the_deadline_marked_counted_and_logged(
        tmp_path: Path, fake_server: tuple[FakeUpstream, ServerThread], fake: FakeUpstream,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hybrid_gateway.knowledge")
    # The knowledge timeout (1 s) bounds the wait; the deadline (30 s) leaves the upstream time to answer.
    with on_chroma_server(tmp_path, fake_server[1].url, deadline_s=30) as (chroma, server):
        assert ask(server).headers["x-gateway-rag"] == "hit"
        with frozen(chroma):
            hung = ask(server, timeout_s=8)  # far below the deadline: only the knowledge timeout ends the wait
            assert hung.headers["x-gateway-rag"] == "timeout"
            assert "x-gateway-sources" not in hung.headers
            assert "<knowledge>" not in str(fake.received[-1]["messages"])
        assert rag_count(server, "timeout") == 1
        assert any("missed its deadline" in r.getMessage() for r in caplog.records)

        poll(lambda: ask(server).headers["x-gateway-rag"] == "hit", "retrieval to recover", timeout_s=30)
        chroma.stop()  # an outage: refused connections, not a slow store
        down = ask(server)
        assert down.headers["x-gateway-rag"] == "unavailable"
        assert rag_count(server, "unavailable") == 1
        assert any("failed, answering without context" in r.getMessage() for r in caplog.records)


def test_retrieval_spends_the_requests_deadline_not_a_fresh_one(
        tmp_path: Path, fake_server: tuple[FakeUpstream, ServerThread], fake: FakeUpstream) -> None:
    """A hung store takes the knowledge timeout (1 s) of a 1.5 s deadline: the upstream gets what is left.

    The upstream answers after 0.8 s, which fits a deadline restarted after retrieval but not the
    0.5 s this request really has left, so the gateway must give up with 504 (the deadline).
    """
    with on_chroma_server(tmp_path, fake_server[1].url, deadline_s=1.5) as (chroma, server), frozen(chroma):
        fake.script_for(BIG_MODEL, Action(delay_s=0.8))
        late = chat(server, "kb", QUESTIONS[0], expect=504)
    assert late.json()["error"]["code"] == "upstream_timeout"
