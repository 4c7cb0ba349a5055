"""The hot path's HTTP/1.1 client against raw loopback servers that answer well, badly or not at all.

Each server is a real asyncio TCP server in the test's loop whose handler writes exact bytes, so
malformed heads, close-delimited bodies and half answers are what the client really reads.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from gateway.upstream import http1

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}"


class RawServer:
    """A loopback server running ``handler`` per connection and counting the connections it accepted."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self._handler = handler
        self._tls = tls
        self.connections = 0
        self.closed_by_client = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self._handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> http1.Origin:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._tls)
        port = self._server.sockets[0].getsockname()[1]
        scheme = "https" if self._tls is not None else "http"
        return http1.origin_of(f"{scheme}://127.0.0.1:{port}/v1/chat/completions")

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's head and body (the client always sends content-length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    return head + await reader.readexactly(length)


def answering(*answers: bytes) -> Handler:
    """Answers each request, on whichever connection it comes, with the next of ``answers``."""
    remaining = iter(answers)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(next(remaining))
            await writer.drain()
    return handler


@pytest.fixture
async def pool() -> AsyncIterator[http1.Pool]:
    pool = http1.Pool(limit=8, idle_s=30)
    yield pool
    pool.close()


async def fetch(pool: http1.Pool, origin: http1.Origin, *, limit: int = 1 << 20, total_s: float | None = 5) -> bytes:
    response = await pool.request(origin, http1.encode(b"POST", origin, b"", b"{}"), body_limit=limit, total_s=total_s,
                                  quiet_s=None, connect_s=5)
    try:
        return await response.read(limit)
    finally:
        response.release()


async def test_the_request_carries_host_target_length_and_body() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(OK)

    async with RawServer(handler) as origin:
        pool = http1.Pool(limit=1, idle_s=30)
        data = http1.encode(b"POST", origin, b"authorization: Bearer k\r\n", b'{"a":1}')
        response = await pool.request(origin, data, body_limit=100, total_s=5, quiet_s=None, connect_s=5)
        assert (response.status, await response.read(100)) == (200, b'{"ok":true}')
        response.release()
        pool.close()
    port = origin.key[2]
    assert seen == [b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:%d\r\nauthorization: Bearer k\r\n"
                    b"content-length: 7\r\n\r\n{\"a\":1}" % port]


async def test_a_connection_is_reused_after_a_whole_answer(pool: http1.Pool) -> None:
    server = RawServer(answering(OK, OK, OK))
    async with server as origin:
        bodies = [await fetch(pool, origin) for _ in range(3)]
    assert bodies == [b'{"ok":true}'] * 3
    assert server.connections == 1


async def test_chunked_and_close_delimited_bodies_are_read_whole(pool: http1.Pool) -> None:
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
    until_close = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it"

    async def close_after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(until_close)

    chunked_server, closing_server = RawServer(answering(chunked, chunked)), RawServer(close_after)
    async with chunked_server as origin:
        assert [await fetch(pool, origin), await fetch(pool, origin)] == [b"abcdefg"] * 2
    async with closing_server as origin:
        assert [await fetch(pool, origin), await fetch(pool, origin)] == [b"all of it"] * 2
    assert (chunked_server.connections, closing_server.connections) == (1, 2)  # a closed connection is not reused


async def test_a_body_over_the_limit_is_refused_and_its_connection_dropped(pool: http1.Pool) -> None:
    big = b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n" + b"x" * 5000
    server = RawServer(answering(big, OK))
    async with server as origin:
        with pytest.raises(http1.BodyTooLarge):
            await fetch(pool, origin, limit=1000)
        assert await fetch(pool, origin) == b'{"ok":true}'
    assert server.connections == 2


@pytest.mark.parametrize("answer, message", [
    (b"HTTP/1.1 200 OK\r\nx-huge: " + b"a" * (http1.MAX_HEAD_BYTES + 1) + b"\r\n\r\n", "headers exceed"),
    (b"HTTQ/1.1 200 OK\r\n\r\n", "malformed HTTP"),
    (b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part", "closed the connection mid-answer"),
])
async def test_garbled_or_cut_answers_break_the_connection(pool: http1.Pool, answer: bytes, message: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)

    async with RawServer(handler) as origin:
        with pytest.raises(http1.ConnectionBroken, match=message):
            await fetch(pool, origin)


async def test_a_server_that_hangs_up_before_answering_is_a_failed_connect(pool: http1.Pool) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with RawServer(hang_up) as origin:
        with pytest.raises(http1.ConnectFailed):
            await fetch(pool, origin)


async def test_nothing_listening_is_a_failed_connect(pool: http1.Pool) -> None:
    server = RawServer(answering())
    async with server as origin:
        pass  # closed: the port no longer listens
    with pytest.raises(http1.ConnectFailed):
        await fetch(pool, origin)


async def test_the_total_deadline_covers_head_and_body(pool: http1.Pool) -> None:
    async def silent_after_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12345")
        await reader.read()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    for handler in (silent, silent_after_head):
        server = RawServer(handler)
        async with server as origin:
            with pytest.raises(TimeoutError):
                await fetch(pool, origin, total_s=0.2)


async def test_a_stream_times_out_on_silence_not_on_length(pool: http1.Pool) -> None:
    pieces, gap = 12, asyncio.Event()

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(pieces):
            await asyncio.sleep(0.05)  # paces the upstream: the stream lasts longer than the allowed silence
            writer.write(b"1\r\nx\r\n")
        writer.write(b"0\r\n\r\n")
        await gap.wait()
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\ny\r\n")
        await reader.read()

    async with RawServer(trickle) as origin:
        response = await pool.request(origin, http1.encode(b"POST", origin, b"", b"{}"), body_limit=0, total_s=None,
                                      quiet_s=0.4, connect_s=5)
        assert b"".join([chunk async for chunk in response.chunks()]) == b"x" * pieces
        response.release()
        gap.set()
        response = await pool.request(origin, http1.encode(b"POST", origin, b"", b"{}"), body_limit=0, total_s=None,
                                      quiet_s=0.4, connect_s=5)
        with pytest.raises(TimeoutError):
            _ = [chunk async for chunk in response.chunks()]
        response.release()


async def test_a_stream_stops_reading_while_its_consumer_lags(pool: http1.Pool) -> None:
    size = 32 * 1024 * 1024
    drained = asyncio.Event()

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.transport.set_write_buffer_limits(high=0)  # drain() returns once the kernel took every byte
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size + b"z" * size)
        await writer.drain()
        drained.set()
        await reader.read()

    async with RawServer(flood) as origin:
        response = await pool.request(origin, http1.encode(b"POST", origin, b"", b"{}"), body_limit=0, total_s=None,
                                      quiet_s=5, connect_s=5)
        # A second of not consuming: a client that kept reading would hold the whole 32 MiB by then.
        await asyncio.wait([asyncio.ensure_future(drained.wait())], timeout=1.0)
        held = response.buffered
        received = sum([len(chunk) async for chunk in response.chunks()])
        response.release()
    assert held <= http1.STREAM_HIGH_WATER + 256 * 1024  # the last read before pausing may overshoot by one read
    assert received == size and drained.is_set()


async def test_the_pool_limit_queues_requests_onto_released_connections() -> None:
    pool = http1.Pool(limit=1, idle_s=30)
    server = RawServer(answering(*[OK] * 5))
    async with server as origin:
        bodies = await asyncio.gather(*[fetch(pool, origin) for _ in range(5)])
    pool.close()
    assert bodies == [b'{"ok":true}'] * 5
    assert server.connections == 1


async def test_a_cancelled_request_closes_its_connection(pool: http1.Pool) -> None:
    arrived = asyncio.Event()
    server_saw_close = asyncio.Event()

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        arrived.set()
        if not await reader.read():
            server_saw_close.set()

    server = RawServer(stall)
    async with server as origin:
        task = asyncio.create_task(fetch(pool, origin))
        await arrived.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(server_saw_close.wait(), 10)


async def test_a_released_answer_cannot_be_read_or_released_twice(pool: http1.Pool) -> None:
    async with RawServer(answering(OK)) as origin:
        response = await pool.request(origin, http1.encode(b"POST", origin, b"", b"{}"), body_limit=100, total_s=5,
                                      quiet_s=None, connect_s=5)
        await response.read(100)
        response.release()
        response.release()
        with pytest.raises(http1.ConnectionBroken, match="released"):
            await response.read(100)


def test_origins_keep_ports_ipv6_brackets_and_queries() -> None:
    assert http1.origin_of("https://api.openai.com/v1/chat/completions").host_header == b"api.openai.com"
    v6 = http1.origin_of("http://[::1]:8000/v1/x?api-version=2024")
    assert (v6.key, v6.host_header, v6.target) == (("http", "::1", 8000), b"[::1]:8000", b"/v1/x?api-version=2024")
    with pytest.raises(ValueError):
        http1.origin_of("ftp://example.com/")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made by the system's openssl."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


async def test_https_verifies_the_upstreams_certificate(certificate: tuple[Path, Path],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Hosted providers are reached over TLS: a certificate the system trusts is accepted, any other refused."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(*certificate)
    async with RawServer(answering(OK, OK), tls) as origin:
        untrusting = http1.Pool(limit=1, idle_s=30)
        with pytest.raises(http1.ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
            await fetch(untrusting, origin)
        untrusting.close()
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # read when the pool makes its TLS context
        trusting = http1.Pool(limit=1, idle_s=30)
        assert await fetch(trusting, origin) == b'{"ok":true}'
        trusting.close()
