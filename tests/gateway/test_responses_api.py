"""POST /v1/responses: the official SDK's ``client.responses`` unchanged, and raw SSE, through a route's arms.

The gateway translates each request into a chat body for the chat pipeline, so the fake upstream (a
Chat Completions server) shows what was translated; every answer comes back as a response object or
the Responses event stream, and is accounted once.
"""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.conftest import BIG_MODEL, SMALL_MODEL
from tests.support.envelope import assert_envelope
from tests.support.fake_upstream import TOOL_CALL_ID, Action, FakeUpstream
from tests.support.ledger import cost_of
from tests.support.metrics import metric_sum, scrape
from tests.support.polling import poll
from tests.support.servers import ServerThread

PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS = [{"type": "function", "name": "get_weather", "description": "Today's weather", "parameters": PARAMETERS}]
CHAT_TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Today's weather",
                                                 "parameters": PARAMETERS}}]
ARM_PROMPT = [{"role": "system", "content": "You are precise."},  # route chat's prompted arm (tests/conftest.py)
              {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
ANSWER_COST = (11 * 2 + 5 * 8) / 1e6  # the fake's 11 prompt and 5 completion tokens at big's $2 / $8 per million
TEXT_EVENTS = ["response.created", "response.in_progress", "response.output_item.added",
               "response.content_part.added", *["response.output_text.delta"] * 5, "response.output_text.done",
               "response.content_part.done", "response.output_item.done", "response.completed"]


def client(gateway: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)


def post(gateway: ServerThread, **body: Any) -> httpx.Response:
    return httpx.post(gateway.url + "/v1/responses", json={"model": "chat", "input": "hi", **body}, timeout=30)


def sse(raw: bytes) -> tuple[list[tuple[str, dict[str, Any]]], list[bytes]]:
    """The events of a Responses stream as (event name, data), and its comment lines; each block one or the other."""
    assert raw.endswith(b"\n\n")
    events, comments = [], []
    for block in raw.split(b"\n\n"):
        if not block:
            continue
        if block.startswith(b":"):
            comments.append(block)
            continue
        name, data = block.split(b"\n")
        assert name.startswith(b"event: ") and data.startswith(b"data: "), block
        events.append((name[len(b"event: "):].decode(), orjson.loads(data[len(b"data: "):])))
    return events, comments


def requests_counted(gateway: ServerThread, **labels: str) -> float:
    return scrape(gateway.url, "gateway_requests_total", **labels)


def test_sdk_create_is_served_by_the_routes_arm_with_its_prompt(gateway: ServerThread, fake: FakeUpstream) -> None:
    raw = client(gateway).responses.with_raw_response.create(
        model="chat", input="hello", instructions="Answer briefly.", max_output_tokens=50, temperature=0.2,
        top_p=0.9, user="u-1", metadata={"team": "a"})
    response = raw.parse()
    assert response.id.startswith("resp_") and response.object == "response" and response.status == "completed"
    assert response.output_text == "Hello from the fake upstream."
    assert response.output[0].type == "message" and response.output[0].id.startswith("msg_")
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (11, 5, 16)
    assert (response.instructions, response.max_output_tokens, response.store) == ("Answer briefly.", 50, False)
    assert (raw.headers["x-gateway-route"], raw.headers["x-gateway-arm"], raw.headers["x-gateway-target"]) == (
        "chat", "prompted", "big")
    assert float(raw.headers["x-gateway-cost-usd"]) == pytest.approx(ANSWER_COST)
    sent = fake.received[-1]
    assert sent["model"] == BIG_MODEL
    # The arm's prompt and few-shot first, then instructions as the client's own system message, then input.
    assert sent["messages"] == [*ARM_PROMPT, {"role": "system", "content": "Answer briefly."},
                                {"role": "user", "content": "hello"}]
    assert {key: sent[key] for key in ("max_completion_tokens", "temperature", "top_p", "user", "metadata")} == {
        "max_completion_tokens": 50, "temperature": 0.2, "top_p": 0.9, "user": "u-1", "metadata": {"team": "a"}}
    assert "stream" not in sent and "max_output_tokens" not in sent and "instructions" not in sent


def test_text_format_json_schema_becomes_the_chat_response_format(gateway: ServerThread, fake: FakeUpstream) -> None:
    response = client(gateway).responses.create(model="chat", input="weather?", text={"format": {
        "type": "json_schema", "name": "weather", "schema": PARAMETERS, "strict": True}})
    assert fake.received[-1]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "weather", "schema": PARAMETERS, "strict": True}}
    assert response.text is not None and response.text.format is not None
    assert response.text.format.type == "json_schema"


def test_function_tool_round_trip(gateway: ServerThread, fake: FakeUpstream) -> None:
    """The model calls a function; the client sends the call and its output back in ``input``; the model answers."""
    fake.script_for(BIG_MODEL, Action(tool_call=("get_weather", '{"city": "Paris"}')))
    sdk = client(gateway)
    question = {"role": "user", "content": "Weather in Paris?"}
    first = sdk.responses.create(model="chat", input=[question], tools=TOOLS, tool_choice="auto")
    assert fake.received[-1]["tools"] == CHAT_TOOLS and fake.received[-1]["tool_choice"] == "auto"
    [call] = first.output
    assert call.type == "function_call" and call.id is not None and call.id.startswith("fc_")
    assert (call.call_id, call.name, call.arguments) == (TOOL_CALL_ID, "get_weather", '{"city": "Paris"}')
    assert first.tools[0].type == "function" and first.tools[0].name == "get_weather"

    second = sdk.responses.create(model="chat", tools=TOOLS, input=[
        question, *first.output, {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 C"}])
    assert second.output_text == "Hello from the fake upstream."
    assert fake.received[-1]["messages"][len(ARM_PROMPT):] == [
        question,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": TOOL_CALL_ID, "type": "function", "function": {"name": "get_weather",
                                                                  "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": TOOL_CALL_ID, "content": "Sunny, 21 C"}]


def test_sdk_stream_sends_the_events_in_order_ending_with_usage(gateway: ServerThread, fake: FakeUpstream) -> None:
    with client(gateway).responses.create(model="chat", input="hi", stream=True) as stream:
        events = list(stream)
    assert [event.type for event in events] == TEXT_EVENTS
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == "Hello from the fake upstream. "
    created, completed = events[0], events[-1]
    assert created.type == "response.created" and created.response.status == "in_progress"
    assert completed.type == "response.completed" and completed.response.id == created.response.id
    assert completed.response.output_text == text
    assert completed.response.usage is not None
    assert (completed.response.usage.input_tokens, completed.response.usage.output_tokens) == (11, 5)
    assert fake.received[-1]["stream"] is True


def test_sdk_stream_helper_accumulates_the_final_response(gateway: ServerThread, fake: FakeUpstream) -> None:
    """``client.responses.stream`` checks every item's identity across events: its final response is whole."""
    with client(gateway).responses.stream(model="chat", input="hi") as stream:
        final = stream.get_final_response()
    assert final.output_text == "Hello from the fake upstream. " and final.status == "completed"


def test_streamed_function_call(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(BIG_MODEL, Action(tool_call=("get_weather", '{"city": "Paris", "unit": "c"}')))
    with client(gateway).responses.create(model="chat", input="weather?", tools=TOOLS,
                                          stream=True) as stream:
        events = list(stream)
    assert [event.type for event in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        *["response.function_call_arguments.delta"] * 2, "response.function_call_arguments.done",
        "response.output_item.done", "response.completed"]
    done = events[-1]
    assert done.type == "response.completed"
    [call] = done.response.output
    assert call.type == "function_call"
    assert (call.call_id, call.name, call.arguments) == (TOOL_CALL_ID, "get_weather", '{"city": "Paris", "unit": "c"}')


def test_raw_sse_names_each_event_and_numbers_it(gateway: ServerThread, fake: FakeUpstream) -> None:
    response = post(gateway, stream=True)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert (response.headers["x-gateway-arm"], response.headers["x-gateway-cost-usd"]) == ("prompted", "pending")
    events, comments = sse(response.content)
    assert [name for name, _ in events] == TEXT_EVENTS
    assert all(data["type"] == name for name, data in events)
    assert [data["sequence_number"] for _, data in events] == list(range(len(TEXT_EVENTS)))
    assert b"[DONE]" not in response.content
    # The cost comes as the chat stream's comment, before the final event, and is what the ledger counted.
    assert comments == [response.content.split(b"\n\n")[-3]]
    assert cost_of(response) == pytest.approx(ANSWER_COST)
    assert scrape(gateway.url, "gateway_cost_usd_total") == pytest.approx(ANSWER_COST)
    final = events[-1][1]["response"]
    assert final["status"] == "completed" and final["output"][0]["content"][0]["text"] == "Hello from the fake upstream. "


def test_both_arms_of_a_route_serve_responses(gateway: ServerThread, fake: FakeUpstream) -> None:
    sdk = client(gateway)
    prompted = sdk.responses.with_raw_response.create(model="chat", input="hi")
    assert prompted.headers["x-gateway-arm"] == "prompted" and fake.received[-1]["model"] == BIG_MODEL
    forced = sdk.responses.with_raw_response.create(model="chat", input="hi",
                                                    extra_headers={"x-gateway-arm": "fine_tuned"})
    assert forced.headers["x-gateway-arm"] == "fine_tuned" and forced.headers["x-gateway-target"] == "small"
    assert fake.received[-1]["model"] == SMALL_MODEL
    assert fake.received[-1]["messages"] == [{"role": "user", "content": "hi"}]  # the fine-tune needs no prompt
    with sdk.responses.create(model="chat", input="hi", stream=True,
                              extra_body={"gateway": {"arm": "fine_tuned"}}) as stream:
        assert [event.type for event in stream][-1] == "response.completed"
    assert fake.received[-1]["model"] == SMALL_MODEL and "gateway" not in fake.received[-1]
    default = sdk.responses.with_raw_response.create(model="chat-small", input="hi")
    assert default.headers["x-gateway-arm"] == "fine_tuned"
    assert requests_counted(gateway, route="chat", arm="prompted") == 1
    assert requests_counted(gateway, route="chat", arm="fine_tuned") == 2
    assert requests_counted(gateway, route="chat-small", arm="fine_tuned") == 1


BAD_INPUTS: list[tuple[dict[str, Any], str, str]] = [
    ({"previous_response_id": "resp_1"}, "previous_response_id", "unsupported_parameter"),
    ({"conversation": "conv_1"}, "conversation", "unsupported_parameter"),
    ({"store": True}, "store", "unsupported_parameter"),
    ({"background": True}, "background", "unsupported_parameter"),
    ({"include": ["reasoning.encrypted_content"]}, "include", "unsupported_parameter"),
    ({"reasoning": {"effort": "low", "summary": "auto"}}, "reasoning.summary", "unsupported_parameter"),
    ({"tools": [{"type": "web_search"}]}, "tools.0.type", "unsupported_parameter"),
    ({"tools": [{"type": "function"}]}, "tools.0.name", "invalid_parameter"),
    ({"tool_choice": {"type": "web_search"}}, "tool_choice.type", "unsupported_parameter"),
    ({"surprise": 1}, "surprise", "invalid_parameter"),
    ({"temperature": "0.5"}, "temperature", "invalid_parameter"),
    ({"max_output_tokens": 0}, "max_output_tokens", "invalid_parameter"),
    ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.json_schema.schema",
     "invalid_parameter"),
    ({"input": []}, "input", "invalid_parameter"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input.0.type", "unsupported_parameter"),
    ({"input": [{"role": "user"}]}, "input.0.content", "invalid_parameter"),
    ({"input": [{"role": "user", "content": "x", "colour": "red"}]}, "input.0.colour", "invalid_parameter"),
    ({"input": [{"type": "function_call_output", "call_id": "call_x", "output": "1"}]}, "input.0.call_id",
     "invalid_parameter"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]},
     "input.0.content.0.file_id", "unsupported_parameter"),
    ({"api_base": "http://elsewhere"}, "api_base", "forbidden_parameter"),
]


def test_bad_input_is_a_400_in_openais_envelope_and_accounted_once(gateway: ServerThread,
                                                                   fake: FakeUpstream) -> None:
    for body, param, code in BAD_INPUTS:
        error = assert_envelope(post(gateway, **body), 400, code, param)
        assert error["type"] == "invalid_request_error", body
    assert fake.received == []  # nothing refused reached an upstream
    assert requests_counted(gateway) == requests_counted(gateway, status="400") == len(BAD_INPUTS)
    with pytest.raises(openai.BadRequestError) as refused:
        client(gateway).responses.create(model="chat", input="hi", previous_response_id="resp_1")
    assert refused.value.code == "unsupported_parameter"
    not_found = httpx.post(gateway.url + "/v1/responses", json={"model": "nope", "input": "hi"})
    assert_envelope(not_found, 404, "model_not_found")


def test_each_request_is_accounted_once(gateway: ServerThread, fake: FakeUpstream) -> None:
    sdk = client(gateway)
    sdk.responses.create(model="chat", input="hi")
    with sdk.responses.create(model="chat", input="hi", stream=True) as stream:
        assert [event.type for event in stream][-1] == "response.completed"
    fake.script_for(BIG_MODEL, Action(status=429, retry_after="3"))
    with pytest.raises(openai.RateLimitError):  # refused upstream before the stream started: a JSON error
        sdk.responses.create(model="chat", input="hi", stream=True)
    assert requests_counted(gateway) == 3
    assert requests_counted(gateway, status="200") == 2 and requests_counted(gateway, status="429") == 1
    assert scrape(gateway.url, "gateway_cost_usd_total") == pytest.approx(2 * ANSWER_COST)
    rows = httpx.get(gateway.url + "/v1/ledger").json()["rows"]  # its totals count the answered requests
    assert sum(row.get("requests", 0) for row in rows) == 2
    assert sum(row.get("cost_usd", 0) for row in rows) == pytest.approx(2 * ANSWER_COST)


def test_a_stream_failing_midway_ends_with_error_then_response_failed(gateway: ServerThread,
                                                                      fake: FakeUpstream) -> None:
    fake.script_for(BIG_MODEL, Action(break_after_chunks=2))
    with client(gateway).responses.create(model="chat", input="hi", stream=True) as stream:
        events = list(stream)
    assert [event.type for event in events][-2:] == ["error", "response.failed"]
    error, failed = events[-2], events[-1]
    assert error.type == "error" and failed.type == "response.failed"
    assert failed.response.status == "failed" and failed.response.error is not None
    assert failed.response.error.code == error.code and error.code
    [message] = failed.response.output
    assert message.type == "message" and message.content[0].type == "output_text"
    assert message.content[0].text == "Hello from "
    assert requests_counted(gateway) == requests_counted(gateway, status="502") == 1


def test_a_client_leaving_a_stream_closes_the_upstream_call_and_counts_one_499(gateway: ServerThread,
                                                                             fake: FakeUpstream) -> None:
    fake.script_for(BIG_MODEL, Action(stall_after_chunks=2))
    before = fake.abandoned
    body = {"model": "chat", "input": "hi", "stream": True}
    with httpx.stream("POST", gateway.url + "/v1/responses", json=body, timeout=30) as response:
        assert next(response.iter_raw()).startswith(b"event: response.created\n")  # under way; then the client leaves
    poll(lambda: fake.abandoned == before + 1, "the gateway to close its upstream stream")
    poll(lambda: requests_counted(gateway, status="499") == 1, "the 499 to be counted")
    assert requests_counted(gateway) == 1


def test_keys_are_checked_as_on_chat(keyed_gateway: ServerThread, fake: FakeUpstream) -> None:
    keyed = openai.OpenAI(base_url=f"{keyed_gateway.url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        keyed.responses.create(model="chat", input="hi")
    assert fake.received == []
    metrics = httpx.get(keyed_gateway.url + "/metrics", headers={"authorization": "Bearer sk-test-1"}).text
    assert metric_sum(metrics, "gateway_requests_total", status="401") == metric_sum(
        metrics, "gateway_requests_total") == 1
    allowed = keyed.with_options(api_key="sk-test-1").responses.create(model="chat", input="hi")
    assert allowed.output_text == "Hello from the fake upstream."


def test_the_openapi_document_describes_the_endpoint(gateway: ServerThread) -> None:
    operation = httpx.get(f"{gateway.url}/openapi.json").json()["paths"]["/v1/responses"]["post"]
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateResponseRequest"}
