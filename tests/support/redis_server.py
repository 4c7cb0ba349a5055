"""Redis for tests: the shared server at 127.0.0.1:6379, and private servers a test may kill.

The shared server is used with a unique key prefix per test, deleted afterwards;
it is never flushed. A test that needs an outage starts its own ``redis-server``
on a free port without persistence, stops it and starts it again on that port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import redis
import redis.asyncio

from tests.support.process import end_process, free_port
from tests.support.required import unavailable

SHARED_REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def require_shared_redis() -> str:
    """The shared Redis URL; without it fail under CI (a silent skip would hide lost coverage), else skip."""
    try:
        with redis.Redis.from_url(SHARED_REDIS_URL, socket_timeout=1, socket_connect_timeout=1) as client:
            client.ping()
    except (redis.RedisError, OSError) as exc:
        unavailable(f"shared Redis at {SHARED_REDIS_URL} is unreachable ({exc})", "start redis-server to run this test")
    return SHARED_REDIS_URL


def unique_prefix() -> str:
    return f"hgtest:{uuid.uuid4().hex[:12]}:"


async def delete_prefix(url: str, prefix: str) -> None:
    """Remove a test's keys; never FLUSHALL a server others use."""
    client = redis.asyncio.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A private, non-persistent redis-server on a fixed free port, restartable on that port."""

    def __init__(self) -> None:
        if not os.path.exists(REDIS_SERVER):
            unavailable("redis-server binary not installed", "apt-get install redis-server")
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="hg-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        log_path = self.directory / "redis.log"
        with log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--dir", str(self.directory)],
                stdout=log_file, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if _answers_ping(self.port):
                return self
            try:  # bounded wait that also notices an early exit (port taken, bad flag)
                self.process.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(f"redis-server exited: {log_path.read_text(errors='replace')[-2000:]}")
        self.stop()
        raise RuntimeError("redis-server did not accept connections in time")

    def stop(self) -> None:
        if self.process is not None:
            end_process(self.process)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
