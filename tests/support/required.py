"""What a test needs from the machine: a service, a binary, the shared data beside the clone.

Missing, the test skips on a developer's machine but fails under ``CI=true``: .ci/run provides
everything, so a skip there would only hide lost coverage.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

ROUTING_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "routing"


def unavailable(reason: str, remedy: str) -> NoReturn:
    """Stop the test: fail under CI, else skip with what would make it run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true requires it")
    pytest.skip(f"{reason}; {remedy}")


def routing_data(folder: str) -> Path:
    """One dataset of the shared routing data (`../shared/data/routing/<folder>` from the repository)."""
    path = ROUTING_DATA / folder
    if not path.is_dir():
        unavailable(f"routing data not found at {path}", "put shared/ beside the repository")
    return path
