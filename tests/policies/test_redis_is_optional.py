"""redis-py loads only when a Redis URL is configured: the embedded default keeps its ~10 MB per worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHECK = """
import json, sys
import gateway.app, gateway.cli.serve
from policies import SharedState
local = SharedState.connect(None)
before = sorted(name for name in sys.modules if name.split(".")[0] == "redis")
shared = SharedState.connect("redis://127.0.0.1:6379/0")
print(json.dumps([before, "redis.asyncio" in sys.modules, local.enabled, shared.enabled]))
"""


def test_redis_is_imported_only_for_a_configured_url() -> None:
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[2], check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '[[], true, false, true]'
