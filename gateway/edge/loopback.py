"""Serve an ASGI app on a loopback port in a background thread and event loop.

Offline tools that replay traffic through the gateway (``hybrid-gateway
eval``) and the tests share this one implementation: the app runs with its
lifespan, ``start`` returns once it listens (or raises), ``stop`` lets it
drain. Signal handlers stay the host process's.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        self.ready.set()

    def install_signal_handlers(self) -> None:  # the host process keeps its own handlers
        return None


class ServerThread:
    """An app served by uvicorn on 127.0.0.1 in its own thread and event loop."""

    def __init__(self, app: Any, port: int = 0) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                loop="asyncio", http="httptools", access_log=False)
        self.server = _Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve())
        except BaseException as exc:  # surfaced by start()
            self.error = exc
            self.server.ready.set()

    def start(self, timeout: float = 30.0) -> ServerThread:
        self.thread.start()
        if not self.server.ready.wait(timeout) or self.error is not None or not self.server.started:
            raise RuntimeError(f"server did not start: {self.error!r}")
        return self

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
