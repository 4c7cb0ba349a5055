"""Relay an upstream SSE stream to the client byte for byte, accounting it on the way.

Each network read is forwarded as one write, byte for byte; only a line that
carries a usage object is parsed (the generated text is parsed only when the
upstream never reports usage and the gateway must estimate it). The usage chunk the gateway asked
for on the client's behalf is hidden unless the client asked for it too. A
failure after the first byte ends the stream with an OpenAI error event, never
a silent truncation. The request's ``Completion`` is built when ``data: [DONE]``
arrives (or when the stream fails or the client leaves): its cost goes out as an
SSE comment line (ignored by SDKs) just before ``data: [DONE]``, and the same value
goes to the ledger when the stream closes.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import Any

from gateway.accounting.completion import (
    Arrival,
    Completion,
    Delivery,
    Exchange,
    Routing,
    finish,
    format_calls,
)
from gateway.accounting.usage import (
    Usage,
    estimate_prompt_tokens,
    estimate_tokens,
    format_cost,
    sse_chunk,
    stream_text,
    usage_from,
)
from gateway.errors import GatewayError, InternalError, UpstreamFailed, sse_error_event
from gateway.pipeline.plan import Plan
from gateway.upstream import UpstreamStream

_DATA = b"data:"
_DONE = b"[DONE]"
_NULL_USAGE = re.compile(rb'"usage"\s*:\s*null')


class SSERelay:
    """Forwards each network read as one write; only lines that carry usage are parsed on the way."""

    def __init__(self, plan: Plan, arrival: Arrival, routing: Routing, delivery: Delivery,
                 on_close: Callable[[Completion], None],
                 captured_messages: Sequence[Mapping[str, Any]] | None = None) -> None:
        """``captured_messages``: the client's, when the route captures this request (its ``Exchange``)."""
        self._plan = plan
        self._arrival = arrival
        self._routing = routing
        self._delivery = delivery
        self._on_close = on_close
        self._captured_messages = captured_messages
        self._usage: Usage | None = None
        self._payloads: list[bytes] = []
        self._skip_blank = False
        self._read_s = 0.0  # waiting on the upstream's stream, after the attempt that opened it
        self._ttft_s: float | None = None
        self._done: Completion | None = None

    def _finish(self, status: int = 200, error_code: str | None = None) -> Completion:
        """The stream's ``Completion``: usage as reported, else estimated from the text relayed."""
        usage = self._usage
        if usage is None:
            usage = Usage(estimate_prompt_tokens(self._plan.messages), estimate_tokens(stream_text(self._payloads)),
                          True)
        delivery = self._delivery.read_longer(self._read_s)
        own = self._captured_messages
        exchange = Exchange(own, self._plan.messages, tuple(self._payloads)) if own is not None else None
        return finish(self._arrival, self._routing, delivery, target=self._plan.target, usage=usage,
                      status=status, error_code=error_code, ttft_s=self._ttft_s, exchange=exchange)

    @staticmethod
    def _trailer(done: Completion) -> list[bytes]:
        """The comment lines before ``data: [DONE]``: the cost, and on a cascade or ensemble every call it paid
        for."""
        lines = [f": x-gateway-cost-usd={format_cost(done.cost_usd)}".encode()]
        if done.delivery.strategy is not None:
            answer = format_cost(done.answer_cost_usd)
            lines.append(f": x-gateway-calls={format_calls(done.routing, done.delivery, answer)}".encode())
        return lines

    def _keep(self, payload: bytes) -> bool:
        """Note a data payload; False for the usage chunk the client did not ask for."""
        self._payloads.append(payload)
        if b'"usage"' not in payload or _NULL_USAGE.search(payload):
            return True
        chunk = sse_chunk(payload)
        usage = usage_from(chunk)
        if usage is None:
            return True
        self._usage = usage
        return bool(chunk.get("choices")) or self._plan.include_usage

    def _pass(self, block: bytes) -> bytes:
        """The complete lines of ``block`` as they go to the client; unchanged unless something is hidden or added."""
        kept: list[bytes] = []
        changed = False
        for line in block.split(b"\n")[:-1]:
            if self._skip_blank and not line.strip():
                self._skip_blank, changed = False, True  # the blank line that ended a hidden event
                continue
            if line.startswith(_DATA):
                payload = line[len(_DATA):].strip()
                if payload == _DONE:
                    changed = True
                    self._done = self._finish()
                    kept += [*self._trailer(self._done), b"", line]
                    continue
                if not self._keep(payload):
                    self._skip_blank = changed = True
                    continue
            kept.append(line)
        return b"\n".join(kept) + b"\n" if changed else block

    async def run(self, stream: UpstreamStream) -> AsyncGenerator[bytes, None]:
        chunks = stream.chunks()
        pending = b""
        tail = b""
        ended: tuple[int, str | None] | None = None  # the status and code of a stream that did not finish
        try:
            while True:
                waited = time.perf_counter()
                try:
                    data = await anext(chunks)
                except StopAsyncIteration:
                    break
                finally:
                    self._read_s += time.perf_counter() - waited
                pending += data
                cut = pending.rfind(b"\n") + 1
                if not cut:
                    continue
                block, pending = pending[:cut], pending[cut:]
                if self._ttft_s is None and block.strip():
                    self._ttft_s = self._arrival.elapsed()
                out = self._pass(block)
                if out.strip():
                    tail = out[-2:]
                    yield out
            if self._done is None:
                raise UpstreamFailed("The upstream ended the stream before it was complete.")
            if tail != b"\n\n":
                yield b"\n"
        except GatewayError as exc:
            ended = exc.status, exc.code
            yield sse_error_event(exc)
        except (GeneratorExit, asyncio.CancelledError):
            ended = 499, "client_closed"
            raise
        finally:
            await stream.aclose()
            if ended is not None or self._done is None:  # None: an error the relay does not know ended it
                status, code = ended or (InternalError.status, InternalError.code)
                self._done = self._finish(status, code)
            self._on_close(self._done)
