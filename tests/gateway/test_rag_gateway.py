"""RAG through the gateway: context reaches the upstream, sources come back, Chroma down degrades."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.settings import Settings, digest_key
from retrieval import DEMO_COLLECTION, KnowledgeStore, ingest_paths
from tests.conftest import POLICY, SMALL_MODEL
from tests.support.chat import chat
from tests.support.chroma_server import ChromaServer
from tests.support.fake_upstream import Action, FakeUpstream
from tests.support.knowledge import SHIPPING_FACT, wait_knowledge_loaded
from tests.support.polling import poll
from tests.support.process import run_cli
from tests.support.servers import ServerThread

KB_ROUTE = """
version: 1
routes:
  kb:
    arms:
      prompted:
        target: big
        system_prompt: You are the Orbital Tea help desk.
        knowledge: {collection: facts, top_k: 2, min_score: 0.3}
  kb-both:  # both arms ground on the same knowledge; the fine-tune falls back to the prompted arm
    default_arm: fine_tuned
    arms:
      prompted:
        target: big
        system_prompt: You are the Orbital Tea senior help desk.
        few_shot: [{user: "Do you ship to the Moon?", assistant: "Not yet."}]
        knowledge: {collection: facts, top_k: 2, min_score: 0.3}
      fine_tuned:
        target: small
        system_prompt: You are Orbital Tea's small model.
        knowledge: {collection: facts, top_k: 2, min_score: 0.3}
        fallback: {to: [{arm: prompted}]}
"""
ADMIN = {"authorization": "Bearer admin-secret"}


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory, fake_server: tuple[FakeUpstream, ServerThread]) -> Iterator[ServerThread]:
    root = tmp_path_factory.mktemp("rag")
    policies = root / "policies"
    policies.mkdir()
    (policies / "base.yaml").write_text(POLICY.format(url=fake_server[1].url))
    (policies / "kb.yaml").write_text(KB_ROUTE)
    docs = root / "docs"
    docs.mkdir()
    (docs / "shipping.md").write_text(SHIPPING_FACT)
    ingest_paths(KnowledgeStore.embedded(root / "var" / "chroma"), [docs], "facts", base_dir=docs)
    settings = Settings(policies_dir=policies, data_dir=root / "var",
                        admin_key_digests=frozenset({digest_key("admin-secret")}))
    server = ServerThread(create_app(settings)).start()
    assert wait_knowledge_loaded(server.url)["status"] == "ready"
    yield server
    server.stop()


def test_context_reaches_the_upstream_and_sources_come_back(kb: ServerThread, fake: FakeUpstream) -> None:
    response = chat(kb, "kb", "When can I get tea delivered on Mars?")
    assert response.status_code == 200
    assert response.headers["x-gateway-rag"] == "hit"
    assert response.headers["x-gateway-sources"] == "shipping.md"
    assert response.json()["gateway"]["sources"][0]["source"] == "shipping.md"
    assert response.json()["gateway"]["request_id"] == response.headers["x-gateway-request-id"]  # for feedback
    system = fake.received[-1]["messages"][0]
    assert system["role"] == "system"
    assert "[1] (source: shipping.md)" in system["content"]
    assert "every 26 months" in system["content"]
    assert system["content"].rstrip().endswith("You are the Orbital Tea help desk.")


def test_streaming_carries_context_and_sources_header(kb: ServerThread, fake: FakeUpstream) -> None:
    response = chat(kb, "kb", "How often do Mars tea shipments leave?", stream=True)
    assert response.headers["x-gateway-sources"] == "shipping.md"
    assert response.content.endswith(b"data: [DONE]\n\n")
    assert "every 26 months" in fake.received[-1]["messages"][0]["content"]


def test_responses_are_grounded_like_chat_completions(kb: ServerThread, fake: FakeUpstream) -> None:
    """/v1/responses takes the chat path: the arm's context and prompt first, then its instructions and input."""
    question = "When can I get tea delivered on Mars?"
    response = httpx.post(kb.url + "/v1/responses", timeout=30,
                          json={"model": "kb", "input": question, "instructions": "Answer in one line."})
    assert response.status_code == 200, response.text
    assert (response.headers["x-gateway-rag"], response.headers["x-gateway-sources"]) == ("hit", "shipping.md")
    body = response.json()
    assert body["object"] == "response" and body["gateway"]["sources"][0]["source"] == "shipping.md"
    assert body["gateway"]["request_id"] == response.headers["x-gateway-request-id"]
    system, *rest = fake.received[-1]["messages"]
    assert "every 26 months" in system["content"]
    assert system["content"].rstrip().endswith("You are the Orbital Tea help desk.")
    assert rest == [{"role": "system", "content": "Answer in one line."}, {"role": "user", "content": question}]


def test_unrelated_question_gets_no_context(kb: ServerThread, fake: FakeUpstream) -> None:
    response = chat(kb, "kb", "Write a haiku about database indexes.")
    assert response.headers["x-gateway-rag"] == "miss"
    assert "x-gateway-sources" not in response.headers
    assert "<knowledge>" not in fake.received[-1]["messages"][0]["content"]


def test_admin_api_upserts_replaces_and_deletes_without_stale_chunks(kb: ServerThread, fake: FakeUpstream) -> None:
    base = kb.url + "/admin/knowledge/facts"
    assert httpx.get(base + "/sources").status_code == 401
    assert httpx.get(base + "/sources", headers={"authorization": "Bearer nope"}).status_code == 401
    doc = {"source": "returns.md", "text": "# Returns\n\nUnopened tea tins can be returned within 45 days.\n"}
    added = httpx.post(base + "/documents", json={"documents": [doc]}, headers=ADMIN, timeout=30).json()
    assert added["files_ok"] == ["returns.md"] and added["chunks_added"] >= 1
    hits = httpx.post(base + "/query", json={"query": "how long to return tea", "k": 1}, headers=ADMIN).json()["hits"]
    assert hits[0]["source"] == "returns.md" and "45 days" in hits[0]["text"]
    changed = {"source": "returns.md", "text": "# Returns\n\nReturns are no longer accepted after 10 days.\n"}
    httpx.post(base + "/documents", json={"documents": [changed]}, headers=ADMIN, timeout=30)
    texts = [h["text"] for h in httpx.post(base + "/query", json={"query": "returns tea days", "k": 5},
                                           headers=ADMIN).json()["hits"]]
    assert any("10 days" in t for t in texts) and not any("45 days" in t for t in texts)
    assert httpx.delete(base + "/sources/returns.md", headers=ADMIN).json()["sources_removed"] == ["returns.md"]
    assert httpx.get(base + "/sources", headers=ADMIN).json()["sources"] == {"shipping.md": 1}
    bad = httpx.post(base + "/documents", json={"documents": [{"source": "../x.md", "text": "x"}]}, headers=ADMIN)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "documents.source"


def test_admin_api_is_off_without_admin_keys(gateway: ServerThread) -> None:
    response = httpx.get(gateway.url + "/admin/knowledge/facts/sources", headers=ADMIN)
    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"


def test_chroma_down_answers_without_context(fake_server: tuple[FakeUpstream, ServerThread], fake: FakeUpstream,
                                             tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "base.yaml").write_text(POLICY.format(url=fake_server[1].url))
    (policies / "kb.yaml").write_text(KB_ROUTE)
    settings = Settings(policies_dir=policies, data_dir=tmp_path / "var", chroma_url="http://127.0.0.1:9")
    server = ServerThread(create_app(settings)).start()
    try:
        readiness = wait_knowledge_loaded(server.url)
        assert readiness["status"] == "not_ready"
        response = chat(server, "kb", "When can I get tea delivered on Mars?")
        assert response.status_code == 200
        assert response.headers["x-gateway-rag"] == "unavailable"
        assert "<knowledge>" not in str(fake.received[-1]["messages"])
        metrics = httpx.get(server.url + "/metrics").text
        assert 'gateway_rag_requests_total{result="unavailable",route="kb"} 1.0' in metrics
    finally:
        server.stop()


def test_a_chroma_server_that_starts_later_is_picked_up(tmp_path: Path, fake_server: tuple[FakeUpstream, ServerThread],
                                                        fake: FakeUpstream) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "base.yaml").write_text(POLICY.format(url=fake_server[1].url))
    # The demo collection: the gateway must also seed it into the late server once it answers.
    (policies / "kb.yaml").write_text(KB_ROUTE.replace("facts", DEMO_COLLECTION))
    chroma = ChromaServer()  # its port is chosen now; the server starts after the gateway
    settings = Settings(policies_dir=policies, data_dir=tmp_path / "var", chroma_url=chroma.url)
    server = ServerThread(create_app(settings)).start()
    try:
        assert wait_knowledge_loaded(server.url)["status"] == "not_ready"  # never reached: not ready, not degraded
        with chroma:
            body = poll(lambda: (b := httpx.get(server.url + "/readyz").json())["status"] == "ready" and b,
                        "the gateway to open the late Chroma server", timeout_s=60)
            assert body["checks"]["knowledge"] == "ok"
            response = chat(server, "kb", "How long do I have to ask Lumen Freight for a refund?")
            assert response.headers["x-gateway-rag"] == "hit"
            assert "refund-policy.md" in response.headers["x-gateway-sources"]
    finally:
        server.stop()


def test_a_chroma_server_serves_the_gateway(tmp_path: Path, fake_server: tuple[FakeUpstream, ServerThread],
                                           fake: FakeUpstream) -> None:
    with ChromaServer() as chroma:
        docs = tmp_path / "docs"
        docs.mkdir()
        (docs / "shipping.md").write_text(SHIPPING_FACT)
        store = KnowledgeStore.server(chroma.url)
        report = ingest_paths(store, [docs], "facts", base_dir=docs)
        assert report.ok and report.chunks_added >= 1
        policies = tmp_path / "policies"
        policies.mkdir()
        (policies / "base.yaml").write_text(POLICY.format(url=fake_server[1].url))
        (policies / "kb.yaml").write_text(KB_ROUTE)
        settings = Settings(policies_dir=policies, data_dir=tmp_path / "var", chroma_url=chroma.url)
        server = ServerThread(create_app(settings)).start()
        try:
            assert wait_knowledge_loaded(server.url)["status"] == "ready"
            response = chat(server, "kb", "When can I get tea delivered on Mars?")
            assert response.headers["x-gateway-rag"] == "hit"
            assert "every 26 months" in fake.received[-1]["messages"][0]["content"]
        finally:
            server.stop()
        (docs / "shipping.md").unlink()
        assert ingest_paths(store, [docs], "facts", base_dir=docs).sources_removed == ["shipping.md"]
        assert store.count("facts") == 0


def test_a_cli_ingest_is_retrieved_by_a_gateway_with_the_same_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_server: tuple[FakeUpstream, ServerThread],
        fake: FakeUpstream) -> None:
    """The container's way: HYBRID_GATEWAY_DATA_DIR set once, `ingest` run from anywhere, then `serve`."""
    docs = tmp_path / "kb" / "docs"
    docs.mkdir(parents=True)
    (docs / "shipping.md").write_text(SHIPPING_FACT + "\n## Mars tea calendar\n\nThe next Mars tea delivery window "
                                      "opens when Earth and Mars align; Orbital Tea posts the Mars date a month ahead.\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "base.yaml").write_text(POLICY.format(url=fake_server[1].url))
    (policies / "kb.yaml").write_text(KB_ROUTE)
    monkeypatch.setenv("HYBRID_GATEWAY_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("HYBRID_GATEWAY_POLICIES", str(policies))
    ingested = run_cli("ingest", "--collection", "facts", str(docs), cwd=elsewhere)
    assert ingested.returncode == 0, ingested.stderr
    # Named from the ingested root, not the ingesting machine's absolute path.
    assert json.loads(ingested.stdout)["files_ok"] == ["docs/shipping.md"]
    server = ServerThread(create_app(Settings.from_env())).start()
    try:
        assert wait_knowledge_loaded(server.url)["status"] == "ready"
        response = chat(server, "kb", "When can I get tea delivered on Mars?")
        assert response.headers["x-gateway-rag"] == "hit"
        cited = response.json()["gateway"]["sources"]
        assert [c["citation"] for c in cited] == [1, 2] and {c["source"] for c in cited} == {"docs/shipping.md"}
        assert response.headers["x-gateway-sources"] == "docs/shipping.md"  # each source once, not per chunk
    finally:
        server.stop()


def test_a_fallback_to_the_prompted_arm_gets_its_own_prompt_with_the_same_context(
        kb: ServerThread, fake: FakeUpstream) -> None:
    """Retrieval runs once for both arms, but each arm's messages are its own prompt plus the context.

    The bug: the fine-tuned arm's grounded messages were reused for the fallback, so the prompted
    arm was sent the fine-tune's system prompt and lost its own and its few-shot examples.
    """
    fake.script_for(SMALL_MODEL, Action(status=500))
    response = chat(kb, "kb-both", "When does Orbital Tea ship to Mars?", expect=200)
    assert response.headers["x-gateway-arm"] == "prompted" and response.headers["x-gateway-rag"] == "hit"
    tuned, prompted = fake.received
    assert [m["role"] for m in prompted["messages"]] == ["system", "user", "assistant", "user"]
    system = prompted["messages"][0]["content"]
    assert "You are the Orbital Tea senior help desk." in system and "small model" not in system
    assert "26 months" in system and "<knowledge>" in system
    assert "You are Orbital Tea's small model." in tuned["messages"][0]["content"]
    assert "26 months" in tuned["messages"][0]["content"]
