"""A real Chroma server (chromadb's own `chroma run`) on a free loopback port, for tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.process import end_process, free_port

CHROMA = Path(sys.executable).parent / "chroma"


class ChromaServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="hg-chroma-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> ChromaServer:
        self.process = subprocess.Popen([str(CHROMA), "run", "--path", str(self.directory), "--host", "127.0.0.1",
                                         "--port", str(self.port)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=1) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"chroma exited with {self.process.returncode}")
                try:
                    if client.get(self.url + "/api/v2/heartbeat").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                try:  # bounded wait that also notices an early exit
                    self.process.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    continue
        self.stop()
        raise RuntimeError("chroma server did not answer in time")

    def stop(self) -> None:
        if self.process is not None:
            end_process(self.process, timeout_s=15)
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> ChromaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
