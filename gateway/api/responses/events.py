"""A chat completion stream, as the chat relay passes it on, rewritten into the Responses API's events.

The relay (``gateway.pipeline.streaming``) has already accounted the stream, or will when it closes:
this only rewrites what reaches the client, and closes the relay when it is closed itself, so a
stream cut short is still accounted once (as 499), by the relay. The events follow OpenAI's order:
``response.created`` and ``response.in_progress`` with the first chunk; per output item
``response.output_item.added``, its content part or arguments deltas, their ``.done`` and
``response.output_item.done``; last ``response.completed`` (``response.incomplete`` when the answer hit
its token limit or a content filter) with the whole response and its usage. Each event is
``event: <type>`` and ``data: <json>`` with its ``type`` and a ``sequence_number`` counting from 0.
The gateway's cost comment (``: x-gateway-cost-usd=...``) passes through, just before the final event.
A failure after the start becomes an ``error`` event, then ``response.failed`` with the output so far.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any

import orjson

from gateway.api.responses.reply import (
    Frame,
    function_call_item,
    loads_object,
    message_item,
    new_id,
    outcome,
    refusal_part,
    response_usage,
    text_part,
)

_DATA = b"data:"
_DONE = b"[DONE]"
_DELTAS = (("output_text", "content"), ("refusal", "refusal"))
"""Each kind of content part, and the chat delta field it is streamed in."""


def _part(kind: str, text: str) -> dict[str, Any]:
    return text_part(text) if kind == "output_text" else refusal_part(text)


class _Message:
    """The streamed message item: its content parts in order, of which the last is still growing."""

    def __init__(self, index: int) -> None:
        self.id = new_id("msg")
        self.index = index
        self.parts: list[tuple[str, list[str]]] = []

    def item(self, status: str) -> dict[str, Any]:
        return message_item(self.id, status, [_part(kind, "".join(pieces)) for kind, pieces in self.parts])


class _Call:
    """A streamed function call item: its arguments as they arrived."""

    def __init__(self, index: int, call_id: str, name: str) -> None:
        self.id = new_id("fc")
        self.index = index
        self.call_id = call_id
        self.name = name
        self.arguments: list[str] = []

    def item(self, status: str) -> dict[str, Any]:
        return function_call_item(self.id, status, self.call_id, self.name, "".join(self.arguments))


class ResponseEvents:
    """One stream's rewriting: the output items as they open, and the sequence numbers given so far."""

    def __init__(self, frame: Frame) -> None:
        self._frame = frame
        self._sequence = 0
        self._started = False
        self._ended = False
        self._model: str | None = None
        self._usage: dict[str, Any] | None = None
        self._finish_reason: object = None
        self._message: _Message | None = None
        self._calls: dict[object, _Call] = {}
        self._items: list[_Message | _Call] = []
        self._comments: list[bytes] = []  # held until the final event, which they precede

    async def rewrite(self, chat: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
        """The Responses events of the chat stream ``chat``, which is closed when this is."""
        pending = b""
        try:
            async for data in chat:
                pending += data
                cut = pending.rfind(b"\n") + 1
                if not cut:
                    continue
                block, pending = pending[:cut], pending[cut:]
                events = b"".join(self._line(line.rstrip(b"\r")) for line in block.split(b"\n"))
                if events:
                    yield events
        finally:
            await chat.aclose()

    def _line(self, line: bytes) -> bytes:
        if self._ended:
            return b""
        if line.startswith(b":"):  # the gateway's cost comment, sent by the relay on the chat stream's [DONE]
            self._comments.append(line + b"\n\n")
            return b""
        if not line.startswith(_DATA):
            return b""
        payload = line[len(_DATA):].strip()
        if payload == _DONE:
            return self._start(None) + self._close()
        chunk = loads_object(payload)
        error = chunk.get("error")
        if isinstance(error, Mapping):
            return self._start(None) + self._fail(error)
        return self._chunk(chunk)

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = orjson.dumps({"type": kind, "sequence_number": self._sequence, **fields})
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

    def _start(self, model: object) -> bytes:
        if self._started:
            return b""
        self._started = True
        self._model = model if isinstance(model, str) else None
        response = self._frame.object("in_progress", [], model=self._model)
        return self._event("response.created", response=response) + self._event("response.in_progress",
                                                                                response=response)

    def _chunk(self, chunk: Mapping[str, Any]) -> bytes:
        events = [self._start(chunk.get("model"))]
        usage = response_usage(chunk)
        if usage is not None:
            self._usage = usage
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue  # the Responses API has no n: the first choice is the answer
            delta = choice.get("delta")
            delta = delta if isinstance(delta, Mapping) else {}
            for kind, field in _DELTAS:
                piece = delta.get(field)
                if isinstance(piece, str) and piece:
                    events.append(self._content(kind, piece))
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                if isinstance(call, Mapping):
                    events.append(self._call(call))
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
        return b"".join(events)

    def _content(self, kind: str, piece: str) -> bytes:
        events = []
        message = self._message
        if message is None:
            message = self._message = _Message(len(self._items))
            self._items.append(message)
            events.append(self._event("response.output_item.added", output_index=message.index,
                                      item=message.item("in_progress")))
        if not message.parts or message.parts[-1][0] != kind:
            if message.parts:
                events.append(self._part_done(message))
            message.parts.append((kind, []))
            events.append(self._event("response.content_part.added", item_id=message.id,
                                      output_index=message.index, content_index=len(message.parts) - 1,
                                      part=_part(kind, "")))
        message.parts[-1][1].append(piece)
        where = {"item_id": message.id, "output_index": message.index, "content_index": len(message.parts) - 1}
        if kind == "output_text":
            events.append(self._event("response.output_text.delta", **where, delta=piece, logprobs=[]))
        else:
            events.append(self._event("response.refusal.delta", **where, delta=piece))
        return b"".join(events)

    def _part_done(self, message: _Message) -> bytes:
        kind, pieces = message.parts[-1]
        text = "".join(pieces)
        where = {"item_id": message.id, "output_index": message.index, "content_index": len(message.parts) - 1}
        if kind == "output_text":
            done = self._event("response.output_text.done", **where, text=text, logprobs=[])
        else:
            done = self._event("response.refusal.done", **where, refusal=text)
        return done + self._event("response.content_part.done", **where, part=_part(kind, text))

    def _call(self, delta: Mapping[str, Any]) -> bytes:
        """A chat tool call delta: the first of an index opens a function call item, each adds arguments."""
        function = delta.get("function")
        function = function if isinstance(function, Mapping) else {}
        name = function.get("name")
        call = self._calls.get(delta.get("index", 0))
        events = []
        if call is None:
            given = delta.get("id")
            call = _Call(len(self._items), given if isinstance(given, str) and given else new_id("call"),
                         name if isinstance(name, str) else "")
            self._calls[delta.get("index", 0)] = call
            self._items.append(call)
            events.append(self._event("response.output_item.added", output_index=call.index,
                                      item=call.item("in_progress")))
        elif isinstance(name, str) and name and not call.name:
            call.name = name
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            call.arguments.append(arguments)
            events.append(self._event("response.function_call_arguments.delta", item_id=call.id,
                                      output_index=call.index, delta=arguments))
        return b"".join(events)

    def _close(self) -> bytes:
        """``[DONE]``: every open item done, then the whole response."""
        self._ended = True
        status, incomplete = outcome(self._finish_reason)
        events, output = [], []
        for item in self._items:
            if isinstance(item, _Message):
                events.append(self._part_done(item))
                done = item.item(status)
            else:
                done = item.item("completed")
                events.append(self._event("response.function_call_arguments.done", item_id=item.id,
                                          output_index=item.index, name=item.name, arguments=done["arguments"]))
            events.append(self._event("response.output_item.done", output_index=item.index, item=done))
            output.append(done)
        response = self._frame.object(status, output, model=self._model, usage=self._usage, incomplete=incomplete)
        events += [*self._comments, self._event(f"response.{status}", response=response)]
        return b"".join(events)

    def _fail(self, error: Mapping[str, Any]) -> bytes:
        """A failure after the start: OpenAI's ``error`` event, then the response as failed, with its output so far."""
        self._ended = True
        code = error.get("code") if isinstance(error.get("code"), str) else "server_error"
        message = str(error.get("message") or "The stream failed.")
        response = self._frame.object("failed", [item.item("incomplete") for item in self._items],
                                      model=self._model, usage=self._usage,
                                      error={"code": code, "message": message})
        return b"".join([self._event("error", code=code, message=message, param=error.get("param")),
                         *self._comments, self._event("response.failed", response=response)])
