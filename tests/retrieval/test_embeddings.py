"""Encoders: the local MiniLM pipeline (offline, normalised, padding- and truncation-correct) and the remote one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import numpy as np
import pytest

from retrieval import Encoder, MiniLMEncoder, RemoteEncoder, RetrievalUnavailable

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def encoder() -> MiniLMEncoder:
    return MiniLMEncoder()


def test_vectors_are_float32_unit_rows(encoder: MiniLMEncoder) -> None:
    vectors = encoder.embed(["refund policy for annual plans", "", "Zürich café ✓"])
    assert isinstance(encoder, Encoder)
    assert vectors.shape == (3, encoder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.embed([]).shape == (0, encoder.dim)


def test_similar_texts_score_higher_than_unrelated(encoder: MiniLMEncoder) -> None:
    query, near, far = encoder.embed(
        [
            "How do I get my money back?",
            "Refunds are paid to the original card.",
            "Pallets are stacked two high.",
        ]
    )
    assert query @ near > query @ far + 0.2


def test_batch_padding_does_not_change_a_vector(encoder: MiniLMEncoder) -> None:
    short = "API rate limits per plan"
    alone = encoder.embed([short])[0]
    batched = encoder.embed([short, "a much longer companion text " * 20])[0]
    np.testing.assert_allclose(alone, batched, atol=1e-4)


def test_truncates_at_256_word_pieces(encoder: MiniLMEncoder) -> None:
    long = "shipment " * 300
    assert encoder.count_tokens([long]) == [300]
    a, b = encoder.embed([long, long + " completely different tail words"])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_one_session_serves_retrieval_and_the_classifier(encoder: MiniLMEncoder) -> None:
    """The default classifier's topic prior reads 12 pieces through retrieval's own session, not a copy."""
    from routes import load_classifier

    topic = load_classifier("default").embedder
    assert isinstance(topic, MiniLMEncoder) and topic.max_tokens < encoder.max_tokens
    assert topic.model is encoder.model
    long = "shipment tracking " * 20
    np.testing.assert_allclose(topic.embed([long]), encoder.embed([" ".join(long.split()[:10])]), atol=1e-5)


def test_session_keeps_no_memory_arena(encoder: MiniLMEncoder) -> None:
    """An arena would keep the largest batch's activations (hundreds of MB after ingestion) for good."""
    assert encoder.model.session.get_session_options().enable_cpu_mem_arena is False


def test_runs_offline_without_any_network() -> None:
    """Encoder and embedded Chroma work with HF_HUB_OFFLINE=1 and every socket connect refused."""
    script = textwrap.dedent(
        """
        import socket, sys, tempfile
        def refuse(*args, **kwargs):
            raise OSError("network disabled in this test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        from retrieval import KnowledgeStore, MiniLMEncoder, ensure_demo_corpus
        store = KnowledgeStore.embedded(tempfile.mkdtemp(), MiniLMEncoder())
        ensure_demo_corpus(store)
        hits = store.query("demo-docs", "How many API calls per minute on Growth?", k=1)
        print(hits[0].source)
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in {"api-rate-limits.md", "changelog.md"}


def _embeddings_server(handler: httpx.MockTransport) -> RemoteEncoder:
    return RemoteEncoder("http://upstream.test/v1", "text-embed", dim=3, api_key="k", transport=handler)


def test_remote_encoder_orders_by_index_and_normalises() -> None:
    seen: list[dict[str, object]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append({"path": request.url.path, "auth": request.headers["authorization"], **body})
        data = [{"index": i, "embedding": [float(i + 1), 0.0, 0.0]} for i in range(len(body["input"]))]
        return httpx.Response(200, json={"data": list(reversed(data))})

    vectors = _embeddings_server(httpx.MockTransport(answer)).embed(["a", "b"])
    assert seen == [
        {"path": "/v1/embeddings", "auth": "Bearer k", "model": "text-embed", "input": ["a", "b"]}
    ]
    np.testing.assert_allclose(vectors, [[1, 0, 0], [1, 0, 0]])


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(503, json={"error": "busy"}),
        httpx.Response(200, json={"unexpected": True}),
        httpx.Response(200, json={"data": [{"index": 0, "embedding": [1.0, 2.0]}]}),
    ],
    ids=["http-error", "malformed", "wrong-width"],
)
def test_remote_encoder_failures_are_retrieval_unavailable(response: httpx.Response) -> None:
    encoder = _embeddings_server(httpx.MockTransport(lambda request: response))
    with pytest.raises(RetrievalUnavailable):
        encoder.embed(["a"])
