"""A lean HTTP/1.1 client for the hot path: pooled keep-alive connections parsed by httptools.

The gateway sends one kind of request upstream (a JSON POST whose answer is JSON or SSE), so a
general client's machinery (redirects, cookies, multipart, middleware, tracing signals) is pure
cost: aiohttp spent 35-49% of a worker's CPU per proxied request (docs/BENCHMARKS.md). This
client writes the request head and body in one write and lets llhttp (the C parser uvicorn
already uses for the gateway's own server) decode status, headers, content-length and chunked
bodies. What remains in Python is a pool of idle connections per origin, a deadline per request
and flow control for streams.

Bounds, whatever the upstream sends: response headers at most ``MAX_HEAD_BYTES``; a whole body at
most the caller's limit (checked as bytes arrive, so an oversized answer is never held); a stream
pauses reading while ``STREAM_HIGH_WATER`` bytes wait for the consumer.

A connection is reused only after its answer was read to the end and the upstream allowed
keep-alive; anything else (an error, a timeout, a cancelled request, a half-read stream) closes it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import lru_cache
from typing import cast
from urllib.parse import urlsplit

import httptools

MAX_HEAD_BYTES = 64 * 1024
STREAM_HIGH_WATER = 1024 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ConnectFailed(OSError):
    """The upstream could not be reached: refused, unresolvable, reset before any answer."""


class ConnectionBroken(Exception):
    """The upstream closed or garbled the connection after it started answering."""


class BodyTooLarge(Exception):
    """The answer is longer than the caller's limit."""


@dataclass(frozen=True)
class Origin:
    """Where a URL's connections go (``key``), and what its requests write on their first two lines."""

    key: tuple[str, str, int]  # scheme, host, port
    target: bytes  # path and query, as written on the request line
    host_header: bytes

    @property
    def scheme(self) -> str:
        return self.key[0]


@lru_cache(maxsize=1024)
def origin_of(url: str) -> Origin:
    """Parses a target's URL once; the URLs come from policy files, so the cache stays small."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url}")
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    host = parts.hostname if port == _DEFAULT_PORTS[parts.scheme] else f"{parts.hostname}:{port}"
    if ":" in parts.hostname:
        host = f"[{parts.hostname}]" + host[len(parts.hostname):]  # an IPv6 literal keeps its brackets
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Origin((parts.scheme, parts.hostname, port), target.encode("ascii"), host.encode("idna"))


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the answer currently arriving on it.

    httptools calls the ``on_*`` methods from ``data_received``; waiters are futures completed
    there, so a request costs no task switches beyond awaiting its answer.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False
        self._failure: BaseException | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._quiet_s = 0.0
        self._heard = 0.0
        self._reset(0)

    def _reset(self, body_limit: int) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.complete = False
        self._reusable = False
        self._started = False
        self._head_bytes = 0
        self._body: list[bytes] = []
        self._buffered = 0
        self._body_limit = body_limit
        self._paused = False
        self._head_waiter: asyncio.Future[None] | None = None
        self._body_waiter: asyncio.Future[None] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        if self._quiet_s:
            self._heard = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:  # raised by one of the on_* methods below
            cause = exc.__context__
            self._fail(cause if isinstance(cause, BodyTooLarge | ConnectionBroken) else ConnectionBroken(str(exc)))
        except httptools.HttpParserUpgrade:
            self._fail(ConnectionBroken("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(ConnectionBroken(f"the upstream sent malformed HTTP: {exc}"))

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost settles the answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.complete:
            return
        if self.status and self._reads_until_close():
            self.on_message_complete()  # an answer delimited by the end of the connection is whole now
        elif self._started:
            self._settle(ConnectionBroken("the upstream closed the connection mid-answer"))
        else:
            self._settle(ConnectFailed(f"the upstream closed the connection: {exc or 'EOF'}"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._started = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > MAX_HEAD_BYTES:
            raise ConnectionBroken(f"the upstream's headers exceed {MAX_HEAD_BYTES} bytes")
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self._wake_head()

    def on_body(self, body: bytes) -> None:
        self._buffered += len(body)
        if self._body_limit:
            if self._buffered > self._body_limit:
                raise BodyTooLarge
        elif self._buffered > STREAM_HIGH_WATER and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._body.append(body)
        if not self._body_limit:  # a stream's consumer takes each piece; a whole body wakes its reader when done
            self._wake_body()

    def on_message_complete(self) -> None:
        # Asked here: once the message is complete llhttp clears the flags this answer depends on.
        self._reusable = self._parser.should_keep_alive()
        self.complete = True
        self._wake_head()
        self._wake_body()

    # what the pool and the client use
    def send(self, data: bytes, body_limit: int) -> None:
        """Writes one request; ``body_limit`` 0 streams the body (flow-controlled, not capped)."""
        assert self._transport is not None
        self._reset(body_limit)
        self._transport.write(data)

    def arm(self, total_s: float | None, quiet_s: float | None) -> None:
        """Fails the answer once ``total_s`` has passed, or once the upstream was silent for ``quiet_s``."""
        if total_s is not None:
            self._timer = self._loop.call_later(total_s, self._expire)
        elif quiet_s is not None:
            self._quiet_s = quiet_s
            self._heard = self._loop.time()
            self._timer = self._loop.call_later(quiet_s, self._check_quiet)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._quiet_s = 0.0

    async def head(self) -> None:
        """Returns once status and headers have arrived."""
        if not self.status and self._failure is None:
            self._head_waiter = self._loop.create_future()
            await self._head_waiter
        self._raise_failure()

    async def body(self, limit: int) -> bytes:
        """The whole body once its last byte arrived, refused past ``limit`` bytes."""
        if self._buffered > limit:
            self.close()
            raise BodyTooLarge
        self._body_limit = limit
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        while not self.complete and self._failure is None:
            self._body_waiter = self._loop.create_future()
            await self._body_waiter
        self._raise_failure()
        return self._body[0] if len(self._body) == 1 else b"".join(self._body)

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive, resuming the transport once the consumer has caught up."""
        while True:
            if self._body:
                # Everything that has arrived goes out as one piece, as aiohttp's iter_any did: one pass through
                # the relay and one send to the client per read, however many chunks the read held.
                data = self._body[0] if len(self._body) == 1 else b"".join(self._body)
                self._body.clear()
                self._buffered = 0
                if self._paused and self._transport is not None:
                    self._paused = False
                    self._transport.resume_reading()
                yield data
                continue
            if self.complete:
                return
            self._raise_failure()
            self._body_waiter = self._loop.create_future()
            await self._body_waiter

    @property
    def buffered(self) -> int:
        return self._buffered

    @property
    def keeps_alive(self) -> bool:
        return self._reusable and not self.closed and self._failure is None

    def close(self) -> None:
        self.closed = True
        self.disarm()
        if self._transport is not None:
            self._transport.abort()

    def _expire(self) -> None:
        self._timer = None
        self._fail(TimeoutError("the upstream did not answer in time"))

    def _check_quiet(self) -> None:
        quiet = self._loop.time() - self._heard
        if self._paused:  # a paused stream waits on its consumer, not on the upstream
            self._timer = self._loop.call_later(self._quiet_s, self._check_quiet)
        elif quiet < self._quiet_s:
            self._timer = self._loop.call_later(self._quiet_s - quiet, self._check_quiet)
        else:
            self._timer = None
            self._fail(TimeoutError("the upstream stopped sending"))

    def _reads_until_close(self) -> bool:
        return "content-length" not in self.headers and "chunked" not in self.headers.get("transfer-encoding", "")

    def _fail(self, error: BaseException) -> None:
        if self.complete:
            return
        if self._failure is None:
            self._failure = error
        self._wake_head()
        self._wake_body()
        self.close()

    def _settle(self, error: BaseException) -> None:
        if self._failure is None:
            self._failure = error
        self._wake_head()
        self._wake_body()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _wake_head(self) -> None:
        waiter, self._head_waiter = self._head_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_body(self) -> None:
        waiter, self._body_waiter = self._body_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Response:
    """An answer whose head has arrived; ``release`` hands its connection back or closes it."""

    def __init__(self, pool: Pool, origin: Origin, connection: _Connection) -> None:
        self._pool = pool
        self._origin = origin
        self._connection: _Connection | None = connection
        self.status = connection.status
        self.headers = connection.headers

    async def read(self, limit: int) -> bytes:
        return await self._connection_or_fail().body(limit)

    def chunks(self) -> AsyncIterator[bytes]:
        return self._connection_or_fail().chunks()

    @property
    def buffered(self) -> int:
        """Body bytes received and not yet taken by the consumer: what this answer holds in memory."""
        return self._connection_or_fail().buffered

    def release(self) -> None:
        """Idempotent: the pool counts each connection once, however many paths release the answer."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.give_back(self._origin, connection)

    def _connection_or_fail(self) -> _Connection:
        if self._connection is None:
            raise ConnectionBroken("the answer was already released")
        return self._connection


class Pool:
    """Idle keep-alive connections per origin, most recently used first, at most ``limit`` open in all."""

    def __init__(self, limit: int, idle_s: float) -> None:
        self._limit = limit
        self._idle_s = idle_s
        self._idle: dict[tuple[str, str, int], list[tuple[float, _Connection]]] = {}
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    async def request(self, origin: Origin, data: bytes, *, body_limit: int, total_s: float | None,
                      quiet_s: float | None, connect_s: float | None) -> Response:
        """Sends ``data`` (head and body) and waits for the answer's head.

        ``total_s`` bounds the whole exchange, reading the body included, until ``Response.release``;
        a stream passes ``None`` and ``quiet_s`` instead, the longest silence it accepts.
        """
        loop = asyncio.get_running_loop()
        connection = self._take_idle(origin, loop.time())
        if connection is None:
            async with asyncio.timeout(connect_s):  # like aiohttp's connect timeout, it covers waiting for a slot
                connection = await self._acquire(loop, origin)
        connection.send(data, body_limit)
        connection.arm(total_s, quiet_s)
        try:
            await connection.head()
        except BaseException:
            self.give_back(origin, connection)
            raise
        return Response(self, origin, connection)

    def give_back(self, origin: Origin, connection: _Connection) -> None:
        connection.disarm()
        if connection.keeps_alive and not self._closed:
            self._idle.setdefault(origin.key, []).append((asyncio.get_running_loop().time(), connection))
            self._wake_one()
        else:
            connection.close()
            self._open -= 1
            self._wake_one()

    def _take_idle(self, origin: Origin, now: float) -> _Connection | None:
        idle = self._idle.get(origin.key)
        while idle:
            since, connection = idle.pop()
            if not connection.closed and now - since < self._idle_s:
                return connection
            connection.close()
            self._open -= 1
            self._wake_one()
        return None

    async def _acquire(self, loop: asyncio.AbstractEventLoop, origin: Origin) -> _Connection:
        """An idle connection to ``origin`` or a new one, waiting while ``limit`` connections are in use."""
        while self._open >= self._limit and not self._close_oldest_idle():
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # pass on the turn this request was given and will not use
                raise
            connection = self._take_idle(origin, loop.time())
            if connection is not None:
                return connection
        self._open += 1
        try:
            _, connection = await loop.create_connection(
                lambda: _Connection(loop), origin.key[1], origin.key[2],
                ssl=self._tls() if origin.scheme == "https" else None)
        except BaseException as exc:
            self._open -= 1
            self._wake_one()
            if isinstance(exc, OSError):
                raise ConnectFailed(f"{type(exc).__name__}: {exc}") from exc
            raise
        return connection

    def _close_oldest_idle(self) -> bool:
        oldest: tuple[float, tuple[str, str, int]] | None = None
        for key, idle in self._idle.items():
            if idle and (oldest is None or idle[0][0] < oldest[0]):
                oldest = idle[0][0], key
        if oldest is None:
            return False
        _, connection = self._idle[oldest[1]].pop(0)
        connection.close()
        self._open -= 1
        return True

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()  # loads the system's CA store once, on the first https origin
        return self._ssl

    def close(self) -> None:
        """Closes the idle connections; those in use close as they are given back."""
        self._closed = True
        for idle in self._idle.values():
            for _, connection in idle:
                connection.close()
            self._open -= len(idle)
        self._idle.clear()


def encode(method: bytes, origin: Origin, headers: bytes, body: bytes = b"") -> bytes:
    """A request's bytes: request line, Host, ``headers`` (CRLF-terminated lines), length, body."""
    return b"".join((method, b" ", origin.target, b" HTTP/1.1\r\nhost: ", origin.host_header, b"\r\n", headers,
                     b"content-length: ", str(len(body)).encode("ascii"), b"\r\n\r\n", body))
