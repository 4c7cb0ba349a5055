"""The Responses translation on its own, for answers the fake upstream does not give: refusals, answers cut
at their token limit, text and several function calls in one answer, a stream's unusual chunks, and the
close of a rewritten stream reaching the relay's (where the stream is accounted)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson

from gateway.api.responses.events import ResponseEvents
from gateway.api.responses.protocol import CreateResponse
from gateway.api.responses.reply import Frame, from_completion
from gateway.api.responses.request import chat_request

CALLS = [{"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}},
         {"id": "call_b", "type": "function", "function": {"name": "time", "arguments": "{}"}}]


def frame(**asked: Any) -> Frame:
    request = CreateResponse.model_validate({"model": "chat", "input": "hi", **asked})
    return Frame.of(request, chat_request(request))


def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    return b"data: " + orjson.dumps({"model": "m-1", "choices": [choice], **extra}) + b"\n\n"


async def rewritten(*blocks: bytes) -> list[dict[str, Any]]:
    async def chat() -> AsyncGenerator[bytes, None]:
        for block in blocks:
            yield block

    out = b"".join([part async for part in ResponseEvents(frame()).rewrite(chat())])
    return [orjson.loads(event.split(b"\ndata: ", 1)[1]) for event in out.split(b"\n\n") if event.startswith(b"event:")]


def test_text_and_two_calls_become_three_output_items_in_order() -> None:
    reply = {"model": "m-1", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Checking.", "tool_calls": CALLS}}]}
    output = from_completion(frame(), reply)["output"]
    assert [item["type"] for item in output] == ["message", "function_call", "function_call"]
    assert output[0]["content"] == [{"type": "output_text", "text": "Checking.", "annotations": [], "logprobs": []}]
    assert [(item["call_id"], item["name"], item["arguments"]) for item in output[1:]] == [
        ("call_a", "weather", '{"city": "Oslo"}'), ("call_b", "time", "{}")]
    assert len({item["id"] for item in output}) == 3


def test_a_refusal_and_an_answer_cut_at_its_limit() -> None:
    refused = from_completion(frame(), {"choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": None, "refusal": "I cannot help with that."}}]})
    assert refused["output"][0]["content"] == [{"type": "refusal", "refusal": "I cannot help with that."}]
    cut = from_completion(frame(max_output_tokens=3), {"choices": [{"index": 0, "finish_reason": "length",
                                                                    "message": {"content": "One two"}}]})
    assert (cut["status"], cut["incomplete_details"], cut["max_output_tokens"]) == (
        "incomplete", {"reason": "max_output_tokens"}, 3)


def test_a_reply_without_choices_or_usage_is_an_empty_response_not_an_error() -> None:
    response = from_completion(frame(), {"object": "chat.completion"})
    assert (response["status"], response["output"], response["usage"], response["model"]) == (
        "completed", [], None, "chat")


async def test_a_stream_of_text_then_parallel_calls() -> None:
    events = await rewritten(
        chunk({"role": "assistant", "content": ""}),  # the role-only opening chunk opens no item
        chunk({"content": "Checking."}),
        chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                               "function": {"name": "weather", "arguments": '{"city": '}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                               "function": {"name": "time", "arguments": "{}"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
        chunk({}, "tool_calls"),
        b'data: {"model":"m-1","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":9,'
        b'"prompt_tokens_details":{"cached_tokens":4}}}\n\n: x-gateway-cost-usd=0.00000100\n\ndata: [DONE]\n\n')
    assert [(event["type"], event.get("output_index")) for event in events] == [
        ("response.created", None), ("response.in_progress", None),
        ("response.output_item.added", 0), ("response.content_part.added", 0), ("response.output_text.delta", 0),
        ("response.output_item.added", 1), ("response.function_call_arguments.delta", 1),
        ("response.output_item.added", 2), ("response.function_call_arguments.delta", 2),
        ("response.function_call_arguments.delta", 1),
        ("response.output_text.done", 0), ("response.content_part.done", 0), ("response.output_item.done", 0),
        ("response.function_call_arguments.done", 1), ("response.output_item.done", 1),
        ("response.function_call_arguments.done", 2), ("response.output_item.done", 2),
        ("response.completed", None)]
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    final = events[-1]["response"]
    assert final["model"] == "m-1"
    assert [item.get("arguments") for item in final["output"]] == [None, '{"city": "Oslo"}', "{}"]
    assert final["usage"] == {"input_tokens": 7, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 9,
                              "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 16}


async def test_a_stream_cut_at_its_limit_ends_incomplete_and_a_refusal_streams_as_its_own_part() -> None:
    events = await rewritten(chunk({"content": "Partly"}), chunk({"refusal": "no more"}), chunk({}, "length"),
                             b"data: [DONE]\n\n")
    assert [(event["type"], event.get("content_index")) for event in events] == [
        ("response.created", None), ("response.in_progress", None), ("response.output_item.added", None),
        ("response.content_part.added", 0), ("response.output_text.delta", 0),
        ("response.output_text.done", 0), ("response.content_part.done", 0),
        ("response.content_part.added", 1), ("response.refusal.delta", 1),
        ("response.refusal.done", 1), ("response.content_part.done", 1), ("response.output_item.done", None),
        ("response.incomplete", None)]
    final = events[-1]["response"]
    assert final["status"] == "incomplete" and final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][0]["status"] == "incomplete"
    assert final["output"][0]["content"] == [
        {"type": "output_text", "text": "Partly", "annotations": [], "logprobs": []},
        {"type": "refusal", "refusal": "no more"}]


async def test_an_error_before_any_chunk_still_starts_the_response_then_fails_it() -> None:
    events = await rewritten(b'data: {"error": {"message": "upstream broke", "type": "server_error", '
                             b'"param": null, "code": "upstream_error"}}\n\n')
    assert [event["type"] for event in events] == ["response.created", "response.in_progress", "error",
                                                   "response.failed"]
    assert (events[2]["code"], events[2]["message"]) == ("upstream_error", "upstream broke")
    assert events[-1]["response"]["error"] == {"code": "upstream_error", "message": "upstream broke"}


async def test_closing_the_rewritten_stream_closes_the_chat_stream() -> None:
    """The relay accounts a stream in its ``finally``: a client leaving must reach it through the rewrite."""
    closed = []

    async def chat() -> AsyncGenerator[bytes, None]:
        try:
            yield chunk({"content": "Hello"})
            yield chunk({"content": " there"})
        finally:
            closed.append(True)

    events = ResponseEvents(frame()).rewrite(chat())
    assert (await anext(events)).startswith(b"event: response.created\n")
    await events.aclose()
    assert closed == [True]


def test_input_items_become_chat_messages_one_per_turn() -> None:
    image, pdf = "data:image/png;base64,AAAA", "data:application/pdf;base64,AAAA"
    request = CreateResponse.model_validate({"model": "chat", "instructions": "Be brief.", "input": [
        {"type": "message", "role": "developer", "content": "Use metric units."},
        {"role": "user", "content": [{"type": "input_text", "text": "What is this?"},
                                     {"type": "input_image", "image_url": image, "detail": "low"},
                                     {"type": "input_file", "file_data": pdf, "filename": "a.pdf"}]},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "A chart.", "annotations": [], "logprobs": []}]},
        {"type": "function_call", "call_id": "call_a", "name": "weather", "arguments": "{}"},
        {"type": "function_call", "call_id": "call_b", "name": "time", "arguments": "{}", "status": "completed"},
        {"type": "function_call_output", "call_id": "call_a", "output": "rain"},
        {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "noon"}]}]})
    assert chat_request(request)["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Use metric units."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": image, "detail": "low"}},
                                     {"type": "file", "file": {"file_data": pdf, "filename": "a.pdf"}}]},
        {"role": "assistant", "content": "A chart.", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": "{}"}},
            {"id": "call_b", "type": "function", "function": {"name": "time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "rain"},
        {"role": "tool", "tool_call_id": "call_b", "content": "noon"}]


def test_settings_map_to_their_chat_fields() -> None:
    request = CreateResponse.model_validate({
        "model": "chat", "input": "hi", "stream": True, "tool_choice": {"type": "function", "name": "weather"},
        "tools": [{"type": "function", "name": "weather", "strict": True}], "parallel_tool_calls": False,
        "reasoning": {"effort": "low"}, "text": {"format": {"type": "json_object"}, "verbosity": "low"},
        "service_tier": "flex", "prompt_cache_key": "k", "safety_identifier": "s", "store": False,
        "truncation": "disabled", "include": [], "gateway": {"arm": "fine_tuned"}})
    body = chat_request(request)
    assert {key: value for key, value in body.items() if key != "messages"} == {
        "model": "chat", "tools": [{"type": "function", "function": {"name": "weather", "strict": True}}],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "response_format": {"type": "json_object"}, "parallel_tool_calls": False, "prompt_cache_key": "k",
        "reasoning_effort": "low", "safety_identifier": "s", "service_tier": "flex", "verbosity": "low",
        "stream": True, "stream_options": {"include_usage": True}, "gateway": {"arm": "fine_tuned"}}
    echoed = Frame.of(request, body).object("completed", [])
    assert (echoed["tool_choice"], echoed["parallel_tool_calls"], echoed["text"]) == (
        {"type": "function", "name": "weather"}, False, {"format": {"type": "json_object"}, "verbosity": "low"})
