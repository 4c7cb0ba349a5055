"""uvicorn's httptools protocol with limits on request headers and on how long a request may take to arrive.

uvicorn bounds neither: a client can send a megabyte of headers or thousands of
them, or open a connection and send its headers (or body) a byte at a time, and
hold the connection and its buffers for as long as it likes. Here, per request:

- request line and headers over ``max_header_bytes``, or more than ``max_headers``
  headers: 431 and the connection is closed, before the bytes pile up;
- headers not complete within ``header_timeout_s`` of the request's first byte
  (or of the connection opening): 408 and close (a connection that sent nothing
  is just closed);
- a body still incomplete ``body_timeout_s`` (plus a short grace) after the
  headers: the connection is closed. Endpoints that read a body answer 408
  themselves at ``body_timeout_s`` (``gateway.pipeline.intake``); this is the backstop
  for a body nobody reads.

It also sends a response's status line and headers in the same write as its first body bytes
(``_HeadWithBody``): uvicorn writes them apart, so every answer cost two ``send`` calls and two
loopback segments, ~10% of a worker's CPU on a short JSON answer.

The limits come from the same ``HYBRID_GATEWAY_*`` settings as the app's, read
once per worker process. ``hybrid-gateway serve`` passes this class to uvicorn
as its ``http`` implementation; it is module level so worker processes can
import it by name.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gateway.edge_settings import EdgeSettings
from gateway.errors import ClientError, GatewayError, RequestTimeout

_BODY_GRACE_S = 5.0


class _TooManyHeaders(Exception):
    """Stops the parser inside its header callback; httptools turns it into a parser error."""


class _HeadWithBody:
    """The connection's transport as one response sees it: its first write (the head) waits for the next one.

    The head goes out with the first body bytes, or on the event loop's next turn if none follow in
    this one (a stream whose first event is still upstream), or before a close: never later, never
    reordered, since nothing else writes to the connection while its response is being sent.
    """

    __slots__ = ("_head", "_loop", "_release", "_started", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None
        self._release: asyncio.Handle | None = None
        self._started = False

    def write(self, data: bytes) -> None:
        if not self._started:
            self._started = True
            self._head = data
            self._release = self._loop.call_soon(self._flush)
            return
        if self._head is not None:
            data = self._head + data
            self._head = None
            assert self._release is not None
            self._release.cancel()
        self._transport.write(data)

    def _flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            if not self._transport.is_closing():
                self._transport.write(head)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    edge: ClassVar[EdgeSettings | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        edge = type(self).edge or type(self)._load_edge()
        self._limits = edge
        self._header_bytes: int | None = 0  # None once the headers are complete
        self._header_count = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._refusal: GatewayError | None = None

    @classmethod
    def _load_edge(cls) -> EdgeSettings:
        from gateway.settings import Settings

        cls.edge = Settings.from_env().edge
        return cls.edge

    # Timers: one per request, for the headers and then for the body.
    def _arm(self, delay_s: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(delay_s, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    # uvicorn narrows asyncio.Protocol's BaseTransport to the Transport it is given (with the same ignore)
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self._limits.header_timeout_s, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._header_bytes is not None:
            self._header_bytes += len(data)
        super().data_received(data)
        if (self._header_bytes is not None and self._header_bytes > self._limits.max_header_bytes
                and not self.transport.is_closing()):
            self._refuse(ClientError(f"The request line and headers exceed {self._limits.max_header_bytes} bytes.",
                                     status=431, code="request_headers_too_large"))

    # Parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0
        if self._deadline is None:
            self._arm(self._limits.header_timeout_s, self._headers_late)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self._limits.max_headers:
            self._refusal = ClientError(f"The request has more than {self._limits.max_headers} headers.",
                                        status=431, code="request_headers_too_large")
            raise _TooManyHeaders
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._header_bytes = None
        self._arm(self._limits.body_timeout_s + _BODY_GRACE_S, self._body_late)
        super().on_headers_complete()
        # A HEAD answer has no body write to carry its head, nor does one that waits for a 100 Continue.
        if self.cycle is not None and self.scope["method"] != "HEAD" and not self.expect_100_continue:
            # the cycle only writes, closes and asks is_closing/get_extra_info of what it is typed as a Transport
            self.cycle.transport = _HeadWithBody(self.transport, self.loop)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        self._disarm()
        self._header_bytes = 0
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error, which is how a refused header callback surfaces."""
        if self._refusal is not None:
            self._refuse(self._refusal)
        else:
            super().send_400_response(msg)

    # Refusals
    def _headers_late(self) -> None:
        self._deadline = None
        if not self._header_bytes or (self.cycle is not None and not self.cycle.response_complete):
            # Nothing sent (an idle or speculative connection, closed silently like an idle keep-alive one),
            # or a pipelined request behind an unfinished response: no room to answer.
            self.transport.close()
            return
        self._refuse(RequestTimeout(f"The request headers did not arrive within {self._limits.header_timeout_s:g} s."))

    def _body_late(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, error: GatewayError) -> None:
        """Answer ``error`` in OpenAI's envelope and close: the rest of this request is never read."""
        if self.transport.is_closing():
            return
        body = orjson.dumps(error.envelope())
        self.transport.write(b"".join([
            STATUS_LINE[error.status], b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body), b"connection: close\r\n\r\n", body]))
        self.transport.close()
