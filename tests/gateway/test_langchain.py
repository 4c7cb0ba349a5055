"""LangChain's ChatOpenAI and OpenAIEmbeddings, unchanged, against the embedded default gateway.

The product promise is "drop-in": a LangChain app changes only its base URL. This runs
langchain-openai's real client (its own request building, SSE parsing, tool-call and usage
handling) against `hybrid-gateway serve` with the demo upstream.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from tests.support.process import GatewayProcess


@pytest.fixture(scope="module")
def served() -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(env={"HYBRID_GATEWAY_DEMO_LATENCY_SCALE": "0"}).start()
    yield gateway
    gateway.stop()


def chat(gateway: GatewayProcess, **options: object) -> ChatOpenAI:
    return ChatOpenAI(base_url=f"{gateway.url}/v1", api_key="unused", model="support",  # type: ignore[arg-type]
                      max_retries=0, **options)


@pytest.mark.multiprocess
def test_invoke_returns_the_answer_and_usage(served: GatewayProcess) -> None:
    reply = chat(served, default_headers={"x-gateway-arm": "prompted"}).invoke(
        [SystemMessage("Answer in one line."), HumanMessage("How do refunds work?")])
    assert "How do refunds work?" in str(reply.content)
    assert reply.response_metadata["model_name"] == "demo-large"
    usage = reply.usage_metadata
    assert usage is not None and usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


@pytest.mark.multiprocess
def test_stream_yields_the_same_answer_in_chunks(served: GatewayProcess) -> None:
    model = chat(served, default_headers={"x-gateway-arm": "fine_tuned"}, stream_usage=True)
    question = [HumanMessage("Which plans exist?")]
    chunks = list(model.stream(question))
    assert len(chunks) > 2 and all(isinstance(c, AIMessageChunk) for c in chunks)
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk  # type: ignore[assignment]
    assert whole.content == model.invoke(question).content  # the demo answers deterministically
    assert whole.usage_metadata is not None and whole.usage_metadata["output_tokens"] > 0


@pytest.mark.multiprocess
def test_bound_tools_come_back_as_tool_calls(served: GatewayProcess) -> None:
    def track_parcel(tracking_id: str, notify: bool) -> str:
        """Where a Lumen Freight parcel is."""
        return tracking_id

    reply = chat(served).bind_tools([track_parcel]).invoke("Where is LF-123?")
    [call] = reply.tool_calls  # type: ignore[attr-defined]
    assert call["name"] == "track_parcel"
    assert call["args"] == {"tracking_id": "example", "notify": True}


@pytest.mark.multiprocess
def test_errors_surface_as_the_openai_exceptions_langchain_raises(served: GatewayProcess) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        ChatOpenAI(base_url=f"{served.url}/v1", api_key="unused", model="no-such-route",  # type: ignore[arg-type]
                   max_retries=0).invoke("hi")
    assert caught.value.body["code"] == "model_not_found"  # type: ignore[index]


@pytest.mark.multiprocess
def test_embeddings(served: GatewayProcess) -> None:
    embeddings = OpenAIEmbeddings(base_url=f"{served.url}/v1", api_key="unused",  # type: ignore[arg-type]
                                  model="demo-embed", check_embedding_ctx_length=False, max_retries=0)
    vectors = embeddings.embed_documents(["refunds", "pricing"])
    assert len(vectors) == 2 and len(vectors[0]) == len(vectors[1]) > 0
    assert embeddings.embed_query("refunds") == vectors[0]
