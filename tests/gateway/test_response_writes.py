"""The served protocol sends a response's head in the same write as its first body bytes, and never holds it back.

Driven directly (a recording transport, the protocol ``serve`` runs), so each ``write`` the
connection receives is visible: one for a JSON answer instead of uvicorn's two; a HEAD answer's
head alone; a stream's head before an event that comes later.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route
from uvicorn.server import ServerState

from gateway.api.event_stream import EventStream
from gateway.edge.http_protocol import GuardedHttpToolsProtocol
from gateway.edge_settings import EdgeSettings


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None


async def _answer(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def _stream(request: Request) -> StreamingResponse:
    release = request.app.state.release

    async def events() -> Any:
        await release.wait()
        yield b"data: late\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def _event_stream(request: Request) -> EventStream:
    release = request.app.state.release

    async def events() -> AsyncGenerator[bytes, None]:
        await release.wait()
        yield b"data: late\n\n"
        yield b"data: [DONE]\n\n"

    return EventStream(events(), {})


def _exchange(request: bytes, release_after_turns: int = 0) -> list[bytes]:
    """The writes the connection received for one request, the stream's event released after some loop turns."""
    app = Starlette(routes=[Route("/answer", _answer, methods=["GET", "HEAD"]), Route("/stream", _stream),
                            Route("/events", _event_stream)])

    async def run() -> list[bytes]:
        app.state.release = asyncio.Event()
        GuardedHttpToolsProtocol.edge = EdgeSettings()
        config = uvicorn.Config(app, lifespan="off", proxy_headers=False, access_log=False)
        protocol = GuardedHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
        transport = RecordingTransport()
        protocol.connection_made(transport)
        protocol.data_received(request)
        for _ in range(release_after_turns):
            await asyncio.sleep(0)
        heads_before_release = len(transport.writes)
        app.state.release.set()
        while protocol.cycle is not None and not protocol.cycle.response_complete:
            await asyncio.sleep(0)
        protocol.connection_lost(None)
        return [b"%d" % heads_before_release, *transport.writes]

    try:
        return asyncio.run(run())
    finally:
        GuardedHttpToolsProtocol.edge = None


def test_a_json_answer_is_one_write() -> None:
    _, *writes = _exchange(b"GET /answer HTTP/1.1\r\nhost: localhost\r\n\r\n")
    assert len(writes) == 1
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b'\r\n\r\n{"ok":true}')


def test_a_head_answer_sends_its_head() -> None:
    _, *writes = _exchange(b"HEAD /answer HTTP/1.1\r\nhost: localhost\r\n\r\n")
    assert len(writes) == 1 and writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"\r\n\r\n")


def test_a_stream_sends_its_head_before_a_late_first_event() -> None:
    before, *writes = _exchange(b"GET /stream HTTP/1.1\r\nhost: localhost\r\n\r\n", release_after_turns=10)
    assert before == b"1" and writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"\r\n\r\n")
    assert b"data: late" in b"".join(writes[1:])


def test_a_completion_stream_sends_its_head_with_its_first_event() -> None:
    """The gateway's own streams wait for the first event (nothing to read before it), saving a write."""
    before, *writes = _exchange(b"GET /events HTTP/1.1\r\nhost: localhost\r\n\r\n", release_after_turns=10)
    assert before == b"0"
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"\r\n\r\nc\r\ndata: late\n\n\r\n")
    assert b"".join(writes[1:]).endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
