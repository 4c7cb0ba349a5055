"""Wait for a condition by polling it against a deadline: the one way tests synchronise with servers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(condition: Callable[[], T], what: str, timeout_s: float = 10.0, every_s: float = 0.025) -> T:
    """The first truthy result of ``condition()``; AssertionError naming ``what`` after ``timeout_s``."""
    pause, deadline = threading.Event(), time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        pause.wait(every_s)
