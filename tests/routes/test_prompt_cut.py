"""A multi-megabyte prompt is read only as far as retrieval and the classifier use it: cut by characters first.

Tokenising a 3.9 MB prompt whole cost +600 MB RSS and ~4 s of CPU, and went on after retrieval's
timeout. The tokenizers here are the real ones, watched (`tests/support/recording_tokenizer.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import retrieval
import routes._static
from gateway.app import create_app
from gateway.settings import Settings
from retrieval import KnowledgeStore, Search, ingest_paths
from retrieval.augment import QUERY_CHARS, query_text
from routes import load_classifier
from routes._embedding import TOPIC_CHARS, topic_encoder, topic_text
from routes._features import WINDOW
from routes._messages import prompt_messages
from tests.conftest import POLICY
from tests.support.fake_upstream import FakeUpstream
from tests.support.knowledge import SHIPPING_FACT, wait_knowledge_loaded
from tests.support.recording_tokenizer import RecordingTokenizer, recording
from tests.support.servers import ServerThread

MB = 1 << 20
CORPUS = Path(retrieval.__file__).parent / "demo_corpus"
QUESTION = "When can I get tea delivered on Mars? "
KB_CLASSIFIED = """
version: 1
routes:
  kb:
    classifier: {model: default, threshold: 0.5}
    arms:
      prompted:
        target: big
        knowledge: {collection: facts, top_k: 2, min_score: 0.3, timeout_ms: 10000}
      fine_tuned:
        target: small
        knowledge: {collection: facts, top_k: 2, min_score: 0.3, timeout_ms: 10000}
"""


def huge(head: str, filler: str, size: int = 4 * MB) -> str:
    return head + filler * ((size - len(head)) // len(filler))


@pytest.fixture(scope="module")
def classified(tmp_path_factory: pytest.TempPathFactory,
               fake_server: tuple[FakeUpstream, ServerThread]) -> Iterator[tuple[ServerThread, KnowledgeStore]]:
    root = tmp_path_factory.mktemp("cut")
    policies = root / "policies"
    policies.mkdir()
    (policies / "base.yaml").write_text(POLICY.format(url=fake_server[1].url))
    (policies / "kb.yaml").write_text(KB_CLASSIFIED)
    docs = root / "docs"
    docs.mkdir()
    (docs / "shipping.md").write_text(SHIPPING_FACT)
    ingest_paths(KnowledgeStore.embedded(root / "var" / "chroma"), [docs], "facts", base_dir=docs)
    app = create_app(Settings(policies_dir=policies, data_dir=root / "var", max_body_bytes=8 * MB))
    server = ServerThread(app).start()
    assert wait_knowledge_loaded(server.url)["status"] == "ready"
    yield server, app.state.gateway.knowledge.store
    server.stop()


def test_a_4_mb_prompt_is_answered_with_context_found_from_its_cut(
    classified: tuple[ServerThread, KnowledgeStore], fake: FakeUpstream
) -> None:
    server, store = classified
    prompt = huge(QUESTION, "Orbital tea ships to the Mars colonies. ")
    assert 4 * MB - 100 < len(prompt.encode()) < 8 * MB
    with recording(store.encoder) as searched, recording(topic_encoder()) as classified_by:
        response = httpx.post(server.url + "/v1/chat/completions", timeout=60,
                              json={"model": "kb", "messages": [{"role": "user", "content": prompt}]})
    assert response.status_code == 200
    assert response.headers["x-gateway-rag"] == "hit"
    assert searched.lengths and max(searched.lengths) <= store.encoder.max_chars
    assert classified_by.lengths and max(classified_by.lengths) <= topic_encoder().max_chars
    assert fake.received[-1]["messages"][-1]["content"] == prompt  # cut for reading, forwarded whole
    expected = store.search_many([Search("facts", query_text(prompt_messages(prompt)), 2)])[0]
    assert isinstance(expected, list)
    sent = response.json()["gateway"]["sources"]
    assert [(s["chunk_id"], s["score"]) for s in sent] == [
        (hit.chunk_id, round(hit.score, 4)) for hit in expected if hit.score >= 0.3
    ]


def test_the_query_is_cut_before_it_is_copied_or_queued() -> None:
    prompt = huge("  " + QUESTION, "x" * 99 + " ")
    assert query_text(prompt_messages(prompt)) == prompt[:QUERY_CHARS].strip()
    parts = [{"type": "text", "text": prompt}, {"type": "text", "text": prompt}]
    assert len(query_text([{"role": "user", "content": parts}])) <= QUERY_CHARS


@pytest.mark.parametrize("model", ["default", "fast"])
def test_a_huge_prompt_scores_as_its_cut_and_the_tokenizer_sees_only_the_cut(
    model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No whitespace for megabytes: the 48-word cap alone let the tokenizer read all of it.

    Past every cut (the features' WINDOW is the widest) the tail changes nothing; the full length
    still counts, as a length feature that costs no reading.
    """
    classifier = load_classifier(model)
    read = RecordingTokenizer(routes._static.load_tokenizer())
    monkeypatch.setattr(routes._static, "load_tokenizer", lambda: read)
    pieces, split = routes._static.load_pieces(), []  # the static prior's own split of ASCII text

    def recorded_pieces(text: str) -> list[int]:
        split.append(len(text))
        return pieces(text)

    monkeypatch.setattr(routes._static, "load_pieces", lambda: recorded_pieces)
    head = huge(QUESTION + "Explain the integral of x.sin(x) step by step.", "tea.mars.", size=2 * WINDOW)
    with recording(topic_encoder()) as read_by_minilm:
        score = classifier.score(prompt_messages(huge(head, "tea.mars.")))
    same_length_other_tail = huge(head, "law.code.")
    assert classifier.score(prompt_messages(same_length_other_tail)).value == score.value
    assert max(read.lengths + split + read_by_minilm.lengths) <= TOPIC_CHARS


def test_topic_text_reads_no_further_than_its_cut() -> None:
    text = huge("calculus " * 10, "y" * 150 + " ", size=MB)
    assert topic_text(text) == topic_text(text[:TOPIC_CHARS])
    assert topic_text("a  b\n c") == "a b c"


def test_the_encoder_cut_leaves_the_embedding_of_long_prose_unchanged(
    classified: tuple[ServerThread, KnowledgeStore],
) -> None:
    """The cut keeps every character the first 256 pieces of prose come from: same vector as tokenising it whole."""
    encoder = classified[1].encoder
    prose = "\n\n".join(path.read_text() for path in sorted(CORPUS.glob("*.md"))) * 5
    assert len(prose) > 2 * encoder.max_chars
    whole = encoder._run_batch([encoder._truncate(encoder._tokenizer.encode(prose).ids)])
    assert encoder.embed([prose]) == pytest.approx(whole, abs=1e-6)
