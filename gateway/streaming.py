"""Relay an upstream SSE stream to the client byte for byte, accounting it on the way.

Each ``data:`` line is parsed once (orjson, microseconds) to pick up usage and
the generated text, then forwarded unchanged. The usage chunk the gateway asked
for on the client's behalf is hidden unless the client asked for it too. A
failure after the first byte ends the stream with an OpenAI error event, never
a silent truncation; the final cost goes out as an SSE comment line (ignored by
SDKs) just before ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from gateway.accounting import Usage, cost_usd, estimate_prompt_tokens, estimate_tokens, usage_from
from gateway.errors import GatewayError, UpstreamFailed, sse_error_event
from gateway.ledger import RequestRecord
from gateway.plan import Plan
from gateway.upstream import UpstreamStream

_DATA = b"data:"
_DONE = b"[DONE]"


def _delta_text(chunk: dict[str, Any]) -> str:
    parts: list[str] = []
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if isinstance(content, str):
            parts.append(content)
        for call in delta.get("tool_calls") or ():
            parts.append(str((call.get("function") or {}).get("arguments") or ""))
    return "".join(parts)


class SSERelay:
    def __init__(self, plan: Plan, record: RequestRecord, on_close: Callable[[RequestRecord], None]) -> None:
        self._plan = plan
        self._record = record
        self._on_close = on_close
        self._usage: Usage | None = None
        self._generated: list[str] = []

    def _finish_usage(self) -> None:
        record, plan = self._record, self._plan
        record.usage = self._usage or Usage(estimate_prompt_tokens(plan.payload["messages"]),
                                            estimate_tokens("".join(self._generated)), estimated=True)
        record.cost_usd = cost_usd(plan.target, record.usage)

    def _inspect(self, line: bytes) -> bool:
        """Note usage and text of a data line; False when the line is the hidden usage chunk."""
        try:
            chunk = orjson.loads(line[len(_DATA):])
        except orjson.JSONDecodeError:
            return True
        if not isinstance(chunk, dict):
            return True
        usage = usage_from(chunk)
        if usage is not None:
            self._usage = usage
            if not chunk.get("choices") and not self._plan.include_usage:
                return False
        self._generated.append(_delta_text(chunk))
        return True

    async def run(self, stream: UpstreamStream) -> AsyncIterator[bytes]:
        record = self._record
        lines = stream.lines()
        finished = hidden = False
        try:
            while True:
                waited = time.perf_counter()
                try:
                    line = await anext(lines)
                except StopAsyncIteration:
                    break
                finally:
                    record.upstream_s += time.perf_counter() - waited
                if hidden and not line.strip():
                    hidden = False  # the blank line that ended the hidden event
                    continue
                if line.startswith(_DATA):
                    payload = line[len(_DATA):].strip()
                    if payload == _DONE:
                        finished = True
                        self._finish_usage()
                        yield f": x-gateway-cost-usd={record.cost_usd or 0.0:.8f}\n\n".encode()
                        yield line
                        continue
                    if not self._inspect(line):
                        hidden = True
                        continue
                    if record.ttft_s is None:
                        record.ttft_s = record.elapsed()
                yield line
            if not finished:
                raise UpstreamFailed("The upstream ended the stream before it was complete.")
        except GatewayError as exc:
            record.status, record.error_code = exc.status, exc.code
            yield sse_error_event(exc)
        except (GeneratorExit, asyncio.CancelledError):
            record.status, record.error_code = 499, "client_closed"
            raise
        finally:
            await stream.aclose()
            if record.usage is None:
                self._finish_usage()
            self._on_close(record)
