"""A chat completion as a Responses API ``response`` object, and the pieces the streamed form shares.

The response repeats what was asked (instructions, tools in the Responses form, sampling, the text
format) around what the arm answered: one ``message`` output item for the text (or refusal), one
``function_call`` item per tool call, and the usage renamed (input/output tokens). Ids are the
gateway's own (``resp_``, ``msg_``, ``fc_``); a function call keeps the upstream's call id as its
``call_id``, which the client's ``function_call_output`` then names. The translation never fails: by
now the request is answered and accounted, so a reply missing a part gives an empty part, not an error.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.accounting.usage import usage_from
from gateway.api.responses.protocol import CreateResponse

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
"""Chat finish reasons that leave a response incomplete, and OpenAI's reason for each."""


def new_id(prefix: str) -> str:
    """A gateway id for a response (``resp``) or an output item (``msg``, ``fc``): unguessable, never reused."""
    return f"{prefix}_{secrets.token_hex(24)}"


def loads_object(payload: bytes) -> dict[str, Any]:
    """A JSON object from ``payload``; empty when it is not one."""
    try:
        found = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return {}
    return found if isinstance(found, dict) else {}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def refusal_part(refusal: str) -> dict[str, Any]:
    return {"type": "refusal", "refusal": refusal}


def message_item(item_id: str, status: str, content: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": list(content)}


def function_call_item(item_id: str, status: str, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name,
            "arguments": arguments}


def response_usage(chunk: Mapping[str, Any]) -> dict[str, Any] | None:
    """A chat ``usage`` block in the Responses form; None when the upstream reported none."""
    usage = usage_from(chunk)
    if usage is None:
        return None
    given = chunk["usage"]
    return {"input_tokens": usage.prompt_tokens,
            "input_tokens_details": {"cached_tokens": _count(given, "prompt_tokens_details", "cached_tokens")},
            "output_tokens": usage.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": _count(given, "completion_tokens_details",
                                                                 "reasoning_tokens")},
            "total_tokens": usage.total_tokens}


def _count(usage: Mapping[str, Any], details: str, name: str) -> int:
    """One count of a usage block's details (cached, reasoning tokens); 0 when not reported."""
    found = usage.get(details)
    count = found.get(name) if isinstance(found, Mapping) else None
    return count if isinstance(count, int) else 0


def outcome(finish_reason: object) -> tuple[str, dict[str, str] | None]:
    """The response's status and ``incomplete_details`` for a chat finish reason."""
    reason = _INCOMPLETE.get(finish_reason) if isinstance(finish_reason, str) else None
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = tool["function"]
    return {"type": "function", "name": function["name"], "description": function.get("description"),
            "parameters": function.get("parameters"), "strict": function.get("strict")}


@dataclass(frozen=True)
class Frame:
    """What every form of one response repeats: its id, its creation time and the request's settings.

    Made once per request from the request and the chat body it became; ``object`` makes the response
    object in any state, for the JSON reply and for each lifecycle event of a stream alike."""

    id: str
    created_at: int
    model: str
    settings: Mapping[str, Any]

    @classmethod
    def of(cls, request: CreateResponse, chat: Mapping[str, Any]) -> Frame:
        text = request.text.model_dump(by_alias=True, exclude_none=True) if request.text else {}
        choice = chat.get("tool_choice", "auto")
        settings = {
            "instructions": request.instructions, "max_output_tokens": request.max_output_tokens,
            "parallel_tool_calls": request.parallel_tool_calls is not False,
            "reasoning": {"effort": request.reasoning.effort if request.reasoning else None, "summary": None},
            "service_tier": request.service_tier, "temperature": request.temperature,
            "text": {"format": {"type": "text"}, **text},
            "tool_choice": ({"type": "function", "name": choice["function"]["name"]} if isinstance(choice, dict)
                            else choice),
            "tools": [_tool(tool) for tool in chat.get("tools", ())], "top_p": request.top_p,
            "user": request.user, "metadata": request.metadata or {},
        }
        return cls(new_id("resp"), int(time.time()), request.model, settings)

    def object(self, status: str, output: Sequence[Mapping[str, Any]], *, model: str | None = None,
               usage: Mapping[str, Any] | None = None, error: Mapping[str, Any] | None = None,
               incomplete: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The response object, fields in the order of OpenAI's reference; ``model``: the one that answered."""
        settings = self.settings
        return {
            "id": self.id, "object": "response", "created_at": self.created_at, "status": status,
            "background": False, "error": error, "incomplete_details": incomplete,
            "instructions": settings["instructions"], "max_output_tokens": settings["max_output_tokens"],
            "model": model or self.model, "output": list(output),
            "parallel_tool_calls": settings["parallel_tool_calls"], "previous_response_id": None,
            "reasoning": settings["reasoning"], "service_tier": settings["service_tier"], "store": False,
            "temperature": settings["temperature"], "text": settings["text"], "tool_choice": settings["tool_choice"],
            "tools": settings["tools"], "top_p": settings["top_p"], "truncation": "disabled", "usage": usage,
            "user": settings["user"], "metadata": settings["metadata"],
        }


def _output(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The output items of a chat answer's message: its text or refusal, then its function calls."""
    output: list[dict[str, Any]] = []
    content, refusal = message.get("content"), message.get("refusal")
    parts = [text_part(content)] if isinstance(content, str) and content else []
    if isinstance(refusal, str) and refusal:
        parts.append(refusal_part(refusal))
    if parts:
        output.append(message_item(new_id("msg"), "completed", parts))
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping):
            output.append(function_call_item(new_id("fc"), "completed", str(call.get("id") or new_id("call")),
                                             str(function.get("name", "")), str(function.get("arguments", ""))))
    return output


def from_completion(frame: Frame, completion: Mapping[str, Any]) -> dict[str, Any]:
    """The response object of a chat completion (its first choice: the Responses API has no ``n``)."""
    choices = completion.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], Mapping) else {}
    message = choice.get("message")
    status, incomplete = outcome(choice.get("finish_reason"))
    model = completion.get("model")
    response = frame.object(status, _output(message if isinstance(message, Mapping) else {}),
                            model=model if isinstance(model, str) else None, usage=response_usage(completion),
                            incomplete=incomplete)
    if "gateway" in completion:  # the sources of a grounded answer, as on a chat completion
        response["gateway"] = completion["gateway"]
    return response
