"""Run ``hybrid-gateway serve`` as a real child process on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def end_process(process: subprocess.Popen[Any], timeout_s: float = 10.0) -> None:
    """Terminate a child and reap it; kill it if it does not stop within ``timeout_s``."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``hybrid-gateway *argv`` in a child process run in ``cwd`` (offline: no model download); its output."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "gateway.cli", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class GatewayProcess:
    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.demo_port = free_port()
        self.args = ["serve", "--port", str(self.port), "--demo-port", str(self.demo_port), *args]
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("HYBRID_GATEWAY_", "OPENAI_"))}
        self.data_dir = tempfile.mkdtemp(prefix="hybrid-gateway-test-")
        self.env = {**environment, "HYBRID_GATEWAY_DATA_DIR": self.data_dir, **(env or {})}
        self.process: subprocess.Popen[str] | None = None
        self.started_in_s = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> GatewayProcess:
        began = time.monotonic()
        self.process = subprocess.Popen([sys.executable, "-m", "gateway.cli", *self.args], cwd=ROOT, env=self.env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        start_new_session=True)
        with httpx.Client(timeout=2) as client:
            while time.monotonic() - began < timeout_s:
                if self.process.poll() is not None:
                    raise RuntimeError(f"gateway exited: {self.process.stderr.read() if self.process.stderr else ''}")
                try:
                    if client.get(self.url + "/readyz").status_code == 200:
                        self.started_in_s = time.monotonic() - began
                        return self
                except httpx.TransportError:
                    time.sleep(0.05)  # polling for the port to open, bounded by timeout_s
        raise RuntimeError("gateway did not become ready")

    def stop(self) -> str:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):  # the whole group may have exited already
            os.killpg(self.process.pid, 15)
        _, err = self.process.communicate(timeout=20)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        return err
