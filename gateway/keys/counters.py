"""Where the keys' windows and spend are kept: the interface, and the embedded default's (no Redis).

``KeyCounters`` is what the gate (``gateway.keys.gate``) asks: ``admit`` judges one request by the rule of
``gateway.keys.windows``; ``settle`` books an ended request's real tokens and cost. With Redis,
``gateway.keys.redis_counters`` shares both across replicas; without it, ``LocalCounters`` keeps the
windows in this process and the month's spend in SQLite, so a restart does not reset a budget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from gateway.api_keys import ApiKey
from gateway.keys.spend_file import SpendFile
from gateway.keys.windows import SlidingWindows, Standing, month_of


class KeyCounters(Protocol):
    async def admit(self, key: ApiKey, request_id: str, need: int, now: float) -> Standing:
        """Judge a request of ``key`` counted for ``need`` tokens; admitted, it is in the key's window."""
        ...

    def settle(self, name: str, request_id: str, reserved: int | None, used: int, cost_usd: float,
               now: float) -> None:
        """A request of key ``name`` ended: it used ``used`` tokens (``reserved`` at admission; None when it was
        not in a window) and cost ``cost_usd``. Never waits: what needs I/O is done in the background."""
        ...

    async def aclose(self) -> None:
        """Write what waits to be written."""
        ...


class LocalCounters:
    """This process's windows, and the spend in ``<data_dir>/key_spend.sqlite3``."""

    def __init__(self, data_dir: Path) -> None:
        self._windows = SlidingWindows()
        self._spend = SpendFile(data_dir)

    async def admit(self, key: ApiKey, request_id: str, need: int, now: float) -> Standing:
        return self._windows.admit(key, request_id, need, self._spend.spent(month_of(now), key.name), now)

    def settle(self, name: str, request_id: str, reserved: int | None, used: int, cost_usd: float,
               now: float) -> None:
        if reserved is not None:
            self._windows.settle(name, request_id, used)
        if cost_usd:
            self._spend.add(month_of(now), name, cost_usd)

    async def aclose(self) -> None:
        await self._spend.aclose()
