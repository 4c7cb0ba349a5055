"""What the demo upstream refuses, as OpenAI does: a 400 naming the parameter, never a crash.

The simulated answer reads ``tools``, ``tool_choice``, ``response_format``,
``n`` and ``messages``; each is checked for the shape OpenAI accepts before the
answer is composed, so a malformed request gets OpenAI's 400 rather than a 500
(and the gateway's tests and benchmarks see a provider that behaves like one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_N = 128  # OpenAI's bound on n
_TOOL_CHOICES = ("none", "auto", "required")
_FORMATS = ("text", "json_object", "json_schema")


class Refusal(Exception):
    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise Refusal("'messages' must be a non-empty array.", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise Refusal(f"'messages[{index}]' must be an object with a 'role'.", f"messages[{index}]")


def _check_tools(tools: Any) -> None:
    if not isinstance(tools, list):
        raise Refusal("'tools' must be an array.", "tools")
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or tool.get("type") != "function":
            raise Refusal(f"'tools[{index}]' must be {{'type': 'function', 'function': {{...}}}}.", f"tools[{index}]")
        if not isinstance(function.get("name"), str) or not function["name"]:
            raise Refusal(f"'tools[{index}].function.name' must be a non-empty string.", f"tools[{index}].function.name")
        parameters = function.get("parameters", {})
        properties = parameters.get("properties", {}) if isinstance(parameters, Mapping) else None
        if not isinstance(properties, Mapping) or not all(isinstance(p, Mapping) for p in properties.values()):
            raise Refusal(f"'tools[{index}].function.parameters' must be a JSON Schema object.",
                          f"tools[{index}].function.parameters")


def _check_tool_choice(choice: Any) -> None:
    if choice in _TOOL_CHOICES:
        return
    function = choice.get("function") if isinstance(choice, Mapping) else None
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise Refusal("'tool_choice' must be 'none', 'auto', 'required' or {'type': 'function', "
                      "'function': {'name': ...}}.", "tool_choice")


def check_chat(body: Mapping[str, Any]) -> None:
    """Raise ``Refusal`` for the first parameter OpenAI would refuse."""
    _check_messages(body.get("messages"))
    n = body.get("n", 1)
    if n is not None and (not _is_int(n) or not 1 <= n <= MAX_N):
        raise Refusal(f"'n' must be an integer from 1 to {MAX_N}.", "n")
    if not isinstance(body.get("stream", False), bool):
        raise Refusal("'stream' must be a boolean.", "stream")
    if body.get("stream_options") is not None and not isinstance(body["stream_options"], Mapping):
        raise Refusal("'stream_options' must be an object.", "stream_options")
    if body.get("tools") is not None:
        _check_tools(body["tools"])
    if body.get("tool_choice") is not None:
        _check_tool_choice(body["tool_choice"])
    fmt = body.get("response_format")
    if fmt is not None and (not isinstance(fmt, Mapping) or fmt.get("type") not in _FORMATS):
        raise Refusal(f"'response_format.type' must be one of {', '.join(_FORMATS)}.", "response_format")


def check_embeddings(body: Mapping[str, Any]) -> None:
    given = body.get("input")
    items = given if isinstance(given, list) else [given]
    if not items or not all((isinstance(item, str) and item) or _is_int(item) or isinstance(item, list)
                            for item in items):
        raise Refusal("'input' must be a non-empty string, an array of them, or token arrays.", "input")
