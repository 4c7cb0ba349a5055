"""Headless Chromium over the DevTools protocol, for tests that look at a rendered page.

``websockets``' sync client (installed by uvicorn[standard]) talks to one page
target: navigate, poll the page with ``Runtime.evaluate``, capture a PNG.
Without Chromium a browser test skips, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.support.polling import poll
from tests.support.process import end_process
from tests.support.required import unavailable

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1360,900", "--remote-debugging-port=0"]


class DevTools:
    """A minimal Chrome DevTools protocol client for one page target."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket, self.ids = socket, itertools.count(1)
        self.exceptions: list[dict[str, Any]] = []
        # Event method -> the (method, params) command answering it, sent without waiting for its reply.
        self.answers: dict[str, Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]] = {}

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self.ids)
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("method") == "Runtime.exceptionThrown":
                self.exceptions.append(message["params"]["exceptionDetails"])
            if message.get("method") in self.answers:
                command, arguments = self.answers[message["method"]](message["params"])
                self.socket.send(json.dumps({"id": next(self.ids), "method": command, "params": arguments}))
            if message.get("id") == ident:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def screenshot(self, name: str, height: int) -> bytes:
        """A full-page PNG of ``height`` CSS pixels, kept as ``test-artifacts/<name>``."""
        self.send("Emulation.setDeviceMetricsOverride", width=1360, height=height, deviceScaleFactor=1,
                  mobile=False)
        png = base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / name).write_bytes(png)
        return png


@contextlib.contextmanager
def chromium(tmp_path: Path) -> Iterator[DevTools]:
    """A fresh headless Chromium with its own profile, driven through its first page."""
    binary = shutil.which("chromium")
    if binary is None:
        unavailable("chromium is not installed", "apt-get install chromium")
    profile = tmp_path / "chromium"
    log = (tmp_path / "chromium.log").open("wb")
    process = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        port_file = profile / "DevToolsActivePort"
        port = poll(lambda: port_file.exists() and port_file.read_text().split("\n")[0].strip(),
                    "chromium's DevTools port", timeout_s=30)
        pages = poll(lambda: [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list").json()
                              if t["type"] == "page"], "a page target")
        with connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as socket:
            tools = DevTools(socket)
            tools.send("Runtime.enable")
            tools.send("Page.enable")
            yield tools
    finally:
        end_process(process)
        log.close()
