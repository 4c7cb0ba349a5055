"""The SSE response of a streamed completion: Starlette's, without its task group.

For servers older than ASGI spec 2.4 (uvicorn among them), Starlette's ``StreamingResponse`` runs
each stream inside an anyio task group beside a second task waiting for the client to leave; the
group's cancel scopes cost a short stream more than the relay's own work (py-spy, docs/BENCHMARKS.md).
This keeps the behaviour that matters, a departing client stopping the stream at once wherever it
waits (so the upstream call is closed and the request accounted as 499), with one plain asyncio
task that watches ``receive`` and cancels the streaming task.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Mapping

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class EventStream(StreamingResponse):
    """A ``text/event-stream`` response that stops, and closes its body iterator, when the client leaves."""

    def __init__(self, events: AsyncGenerator[bytes, None], headers: Mapping[str, str]) -> None:
        super().__init__(events, media_type="text/event-stream", headers=headers)
        self._events = events

    def through(self, rewrite: Callable[[AsyncGenerator[bytes, None]], AsyncGenerator[bytes, None]]) -> EventStream:
        """The same response, its events rewritten by ``rewrite`` (``/v1/responses`` over a chat stream).

        ``rewrite`` must close the generator it is given when it is closed itself: that generator's
        ``finally`` is where a stream is accounted, a stream cut short by the client included."""
        return EventStream(rewrite(self._events), self.headers)

    async def stream_response(self, send: Send) -> None:
        """The head goes out with the first event, in one write. Sent at once, it was a write of its own
        (~6% of a stream's samples): the upstream's head usually arrives a read before its first event.
        A client reads nothing before the first event either way, and errors before it keep their status,
        because they are raised before this response exists."""
        first = await anext(self._events, None)
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if first is not None:
            await send({"type": "http.response.body", "body": first, "more_body": True})
            async for event in self._events:
                await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.current_task()
        assert streaming is not None
        left = False

        async def watch() -> None:
            nonlocal left
            while (await receive())["type"] != "http.disconnect":
                pass
            left = True
            streaming.cancel()

        # uvicorn answers http.disconnect once the response is complete too; the watcher is cancelled
        # before it can run then, because the last send returns to this task without yielding.
        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            await self.stream_response(send)
        except asyncio.CancelledError:
            if not left:
                raise
            streaming.uncancel()  # the cancellation was this response's own: the request ends normally
        finally:
            watcher.cancel()
            await self._events.aclose()  # a stream cut short runs its accounting now, not when collected
