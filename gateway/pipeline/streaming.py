"""Relay an upstream SSE stream to the client byte for byte, accounting it on the way.

Each network read is forwarded as one write, byte for byte; only a line that
carries a usage object is parsed (the generated text is parsed only when the
upstream never reports usage and the gateway must estimate it). The usage chunk the gateway asked
for on the client's behalf is hidden unless the client asked for it too. A
failure after the first byte ends the stream with an OpenAI error event, never
a silent truncation; the final cost goes out as an SSE comment line (ignored by
SDKs) just before ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from gateway.accounting.ledger import RequestRecord
from gateway.accounting.usage import (
    Usage,
    cost_usd,
    estimate_prompt_tokens,
    estimate_tokens,
    format_cost,
    usage_from,
)
from gateway.errors import GatewayError, UpstreamFailed, sse_error_event
from gateway.pipeline.plan import Plan
from gateway.upstream import UpstreamStream

_DATA = b"data:"
_DONE = b"[DONE]"
_NULL_USAGE = re.compile(rb'"usage"\s*:\s*null')


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


def _loads(payload: bytes) -> dict[str, Any]:
    try:
        chunk = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return {}
    return chunk if isinstance(chunk, dict) else {}


class SSERelay:
    """Forwards each network read as one write; only lines that carry usage are parsed on the way."""

    def __init__(self, plan: Plan, record: RequestRecord, on_close: Callable[[RequestRecord], None]) -> None:
        self._plan = plan
        self._record = record
        self._on_close = on_close
        self._usage: Usage | None = None
        self._payloads: list[bytes] = []
        self._skip_blank = False
        self.finished = False

    def _finish_usage(self) -> None:
        """Usage as reported, else estimated from the text relayed (parsed only on this rare path)."""
        record, plan = self._record, self._plan
        if self._usage is None:
            text = "".join(_delta_text(_loads(payload)) for payload in self._payloads)
            self._usage = Usage(estimate_prompt_tokens(plan.messages), estimate_tokens(text), True)
        record.usage = self._usage
        record.cost_usd = cost_usd(plan.target, record.usage)

    def _keep(self, payload: bytes) -> bool:
        """Note a data payload; False for the usage chunk the client did not ask for."""
        self._payloads.append(payload)
        if b'"usage"' not in payload or _NULL_USAGE.search(payload):
            return True
        chunk = _loads(payload)
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
                    self.finished = changed = True
                    self._finish_usage()
                    kept += [f": x-gateway-cost-usd={format_cost(self._record.cost_usd)}".encode(), b"", line]
                    continue
                if not self._keep(payload):
                    self._skip_blank = changed = True
                    continue
            kept.append(line)
        return b"\n".join(kept) + b"\n" if changed else block

    async def run(self, stream: UpstreamStream) -> AsyncIterator[bytes]:
        record = self._record
        chunks = stream.chunks()
        pending = b""
        tail = b""
        try:
            while True:
                waited = time.perf_counter()
                try:
                    data = await anext(chunks)
                except StopAsyncIteration:
                    break
                finally:
                    record.upstream_s += time.perf_counter() - waited
                pending += data
                cut = pending.rfind(b"\n") + 1
                if not cut:
                    continue
                block, pending = pending[:cut], pending[cut:]
                out = self._pass(block)
                if out.strip():
                    if record.ttft_s is None:
                        record.ttft_s = record.elapsed()
                    tail = out[-2:]
                    yield out
            if not self.finished:
                raise UpstreamFailed("The upstream ended the stream before it was complete.")
            if tail != b"\n\n":
                yield b"\n"
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
