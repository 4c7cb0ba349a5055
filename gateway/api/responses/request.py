"""A Responses API request as the chat completion body that the chat pipeline serves.

The translation is total or refuses: each field becomes its Chat Completions counterpart, and what has
none (stored state, hosted tools, reasoning summaries) is a 400 naming the field and saying why, before
anything is routed. The chat body then takes exactly the path of ``/v1/chat/completions``: the route's
arm prompt and few-shot go before these messages, so ``instructions`` become the client's first system
message, after the arm's.
"""

from __future__ import annotations

from typing import Any

from gateway.api.responses.protocol import (
    ITEMS,
    CreateResponse,
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionChoice,
    FunctionTool,
    InputFile,
    InputImage,
    InputText,
    JsonObjectFormat,
    JsonSchemaFormat,
    MessageItem,
    OutputText,
    Refusal,
)
from gateway.errors import InvalidRequest
from gateway.pipeline.intake import validate

_STATELESS = ("the gateway keeps no responses (store: false): send the whole conversation in input, with "
              "earlier output items and function_call_output items")


def _unsupported(param: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"'{param}' is not supported: {why}.", param=param, code="unsupported_parameter")


def _refuse_stateful(request: CreateResponse) -> None:
    """The documented fields the gateway cannot honour, each refused with its reason."""
    refusals = (
        (request.previous_response_id is not None, "previous_response_id", _STATELESS),
        (request.conversation is not None, "conversation", _STATELESS),
        (request.store is True, "store", _STATELESS),
        (request.background is True, "background", "nothing is stored to poll; stream instead"),
        (request.prompt is not None, "prompt", "prompt templates are stored at OpenAI; send instructions"),
        (bool(request.include), "include", "the answers carry none of the extra data it names"),
        (request.truncation == "auto", "truncation", "the gateway never drops input items"),
        (request.max_tool_calls is not None, "max_tool_calls", "only function tools are served, one call "
                                                                "round per response"),
        (request.top_logprobs is not None, "top_logprobs", "the answers carry no log-probabilities"),
        (request.reasoning is not None and request.reasoning.summary is not None, "reasoning.summary",
         "Chat Completions upstreams return no reasoning summary"),
    )
    for refused, param, why in refusals:
        if refused:
            raise _unsupported(param, why)


def _part(part: InputText | OutputText | Refusal | InputImage | InputFile, where: str) -> dict[str, Any]:
    """A chat content part; a file or image known only by an OpenAI file id cannot be sent elsewhere."""
    if isinstance(part, (InputText, OutputText)):
        return {"type": "text", "text": part.text}
    if isinstance(part, InputImage):
        if part.image_url is None:
            raise _unsupported(f"{where}.file_id", "OpenAI file ids name no file the gateway can send; give "
                                                    "image_url (an https: or data: URL)")
        image = {"url": part.image_url, **({"detail": part.detail} if part.detail else {})}
        return {"type": "image_url", "image_url": image}
    if isinstance(part, InputFile):
        if part.file_data is None:
            raise _unsupported(f"{where}.file_id", "OpenAI file ids name no file the gateway can send; give "
                                                    "file_data")
        return {"type": "file", "file": {"file_data": part.file_data,
                                         **({"filename": part.filename} if part.filename else {})}}
    raise InvalidRequest("A refusal part belongs to an assistant message.", param=f"{where}.type",
                         code="invalid_parameter")


def _text(parts: list[Any], where: str) -> str:
    """The text of parts that must be text only: an assistant's earlier answer, a function's output."""
    texts = []
    for index, part in enumerate(parts):
        if isinstance(part, (InputText, OutputText)):
            texts.append(part.text)
        elif isinstance(part, Refusal):
            texts.append(part.refusal)
        else:
            raise InvalidRequest(f"{where} may hold text only.", param=f"{where}.{index}.type",
                                 code="invalid_parameter")
    return "".join(texts)


def _message(item: MessageItem, where: str) -> dict[str, Any]:
    content = item.content
    if isinstance(content, str):
        return {"role": item.role, "content": content}
    if item.role == "assistant":
        return {"role": "assistant", "content": _text(content, f"{where}.content")}
    return {"role": item.role, "content": [_part(part, f"{where}.content.{i}") for i, part in enumerate(content)]}


def _messages(request: CreateResponse) -> list[dict[str, Any]]:
    """``instructions`` as a system message, then ``input``; function calls join the assistant message before
    them (one turn's text and calls are one chat message), their outputs become tool messages."""
    messages: list[dict[str, Any]] = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    if isinstance(request.input, str):
        messages.append({"role": "user", "content": request.input})
        return messages
    calls: set[str] = set()
    for index, raw in enumerate(request.input):
        kind = raw.get("type", "message")
        model = ITEMS.get(kind) if isinstance(kind, str) else None
        if model is None:
            raise _unsupported(f"input.{index}.type", f"items of type {str(kind)[:64]!r} need OpenAI-hosted state or "
                                                      "tools; send message, function_call and "
                                                      "function_call_output items")
        item = validate(model, raw, ("input", index))
        if isinstance(item, MessageItem):
            messages.append(_message(item, f"input.{index}"))
        elif isinstance(item, FunctionCallItem):
            call = {"id": item.call_id, "type": "function",
                    "function": {"name": item.name, "arguments": item.arguments}}
            if messages and messages[-1]["role"] == "assistant":
                messages[-1] = {**messages[-1], "tool_calls": [*messages[-1].get("tool_calls", ()), call]}
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            calls.add(item.call_id)
        else:
            messages.append(_tool_message(item, index, calls))
    if not messages:
        raise InvalidRequest("input must hold at least one item (or give instructions).", param="input",
                             code="invalid_parameter")
    return messages


def _tool_message(item: FunctionCallOutputItem, index: int, calls: set[str]) -> dict[str, Any]:
    if item.call_id not in calls:
        raise InvalidRequest(f"function_call_output {item.call_id[:64]!r} answers no function_call before it in "
                             "input.", param=f"input.{index}.call_id", code="invalid_parameter")
    output = item.output if isinstance(item.output, str) else _text(item.output, f"input.{index}.output")
    return {"role": "tool", "tool_call_id": item.call_id, "content": output}


def _tools(request: CreateResponse) -> list[dict[str, Any]]:
    tools = []
    for index, raw in enumerate(request.tools or ()):
        if raw.get("type") != "function":
            raise _unsupported(f"tools.{index}.type", f"{str(raw.get('type'))[:64]!r} is a tool OpenAI hosts; the "
                                                      "gateway serves function tools")
        tool = validate(FunctionTool, raw, ("tools", index))
        function: dict[str, Any] = {"name": tool.name}
        for key, value in (("description", tool.description), ("parameters", tool.parameters),
                           ("strict", tool.strict)):
            if value is not None:
                function[key] = value
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        return choice
    if choice.get("type") != "function":
        raise _unsupported("tool_choice.type", "the gateway serves function tools only; give none, auto, "
                                               "required or a function")
    named = validate(FunctionChoice, choice, ("tool_choice",))
    return {"type": "function", "function": {"name": named.name}}


def _response_format(request: CreateResponse) -> dict[str, Any] | None:
    found = request.text.format if request.text is not None else None
    if isinstance(found, JsonObjectFormat):
        return {"type": "json_object"}
    if isinstance(found, JsonSchemaFormat):
        schema: dict[str, Any] = {"name": found.name, "schema": found.json_schema}
        if found.description is not None:
            schema["description"] = found.description
        if found.strict is not None:
            schema["strict"] = found.strict
        return {"type": "json_schema", "json_schema": schema}
    return None  # text, or nothing: the chat default


def chat_request(request: CreateResponse) -> dict[str, Any]:
    """The chat completion body that serves ``request``; InvalidRequest for what has no chat counterpart."""
    _refuse_stateful(request)
    body: dict[str, Any] = {"model": request.model, "messages": _messages(request)}
    tools = _tools(request)
    if tools:
        body["tools"] = tools
    if request.tool_choice is not None:
        body["tool_choice"] = _tool_choice(request.tool_choice)
    response_format = _response_format(request)
    if response_format is not None:
        body["response_format"] = response_format
    passed = {
        "max_completion_tokens": request.max_output_tokens, "metadata": request.metadata,
        "parallel_tool_calls": request.parallel_tool_calls, "prompt_cache_key": request.prompt_cache_key,
        "reasoning_effort": request.reasoning.effort if request.reasoning else None,
        "safety_identifier": request.safety_identifier, "service_tier": request.service_tier,
        "temperature": request.temperature, "top_p": request.top_p, "user": request.user,
        "verbosity": request.text.verbosity if request.text else None,
    }
    body.update((key, value) for key, value in passed.items() if value is not None)
    if request.stream:  # the usage chunk, for response.completed (the chat relay hides it unless asked)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if request.gateway is not None:
        body["gateway"] = request.gateway.model_dump(exclude_none=True)
    return body
