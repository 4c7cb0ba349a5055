"""A key's sliding minute and how a request is judged against its limits: the rule, in process.

Each key with a requests or tokens limit keeps a log of the requests admitted in the last ``WINDOW_S``
seconds, each with the tokens it is counted for. A request is admitted only if, counting it, the log holds
at most ``rpm`` requests and ``tpm`` tokens: so no window of ``WINDOW_S`` seconds ever admits more (an exact
sliding log, not a bucket that lets a burst through at each window edge). The tokens are reserved at
admission (the prompt's estimate plus ``max_tokens``) and settled to the real usage when the request ends.

The budget is judged on the month's spend (UTC calendar month) before the request: it is admitted while the
spend is below the budget. ``gateway.keys.redis_counters`` runs the same rule as one Lua script.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

from gateway.api_keys import ApiKey

WINDOW_S = 60.0
Verdict = Literal["admitted", "requests", "tokens", "too_large", "budget"]


def month_of(now: float) -> str:
    """The UTC calendar month a budget counts spend in, as ``YYYY-MM``."""
    return time.strftime("%Y-%m", time.gmtime(now))


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a key stands once a request was judged: what the ``x-ratelimit-*`` headers and a refusal report.

    ``requests``/``tokens``: in the window now, the request included when admitted; ``reset_s``: until the
    window is empty again (of requests and of tokens alike: one log holds both); ``retry_after_s``: until the
    refused request would fit (0 when admitted)."""

    verdict: Verdict
    requests: int
    tokens: int
    spent_usd: float
    reset_s: float
    retry_after_s: float


@dataclass
class _Entry:
    at: float
    tokens: int


class _Log:
    """One key's admitted requests of the last minute, oldest first, and their tokens' sum."""

    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}  # insertion order is admission order
        self.ids: deque[str] = deque()
        self.tokens = 0

    def expire(self, now: float) -> None:
        while self.ids and self.entries[self.ids[0]].at <= now - WINDOW_S:
            self.tokens -= self.entries.pop(self.ids.popleft()).tokens

    def reset_s(self, now: float) -> float:
        return self.entries[self.ids[-1]].at + WINDOW_S - now if self.ids else 0.0

    def frees_s(self, now: float, requests: int, tokens: int) -> float:
        """How long until ``requests`` more requests and ``tokens`` more tokens fit under the limits, by the
        oldest entries leaving (the caller checked that the tokens alone fit the limit)."""
        wait, freed, left = 0.0, 0, len(self.ids)
        for request_id in self.ids:
            if left <= requests and self.tokens - freed <= tokens:
                break
            entry = self.entries[request_id]
            wait, freed, left = entry.at + WINDOW_S - now, freed + entry.tokens, left - 1
        return max(wait, 0.0)


class SlidingWindows:
    """The sliding minutes of every key, in this process: the embedded default's, and the fallback of
    ``RedisCounters`` while Redis is down. One event loop, so each call is atomic."""

    def __init__(self) -> None:
        self._logs: dict[str, _Log] = {}

    def admit(self, key: ApiKey, request_id: str, need: int, spent_usd: float, now: float) -> Standing:
        """Judge a request of ``key`` counted for ``need`` tokens; admitted, it enters the key's log."""
        log = self._logs.get(key.name)
        if log is None:
            log = self._logs[key.name] = _Log()
        log.expire(now)
        verdict = judge(key, len(log.ids), log.tokens, need, spent_usd)
        retry_s = 0.0
        if verdict == "admitted":
            if key.rpm is not None or key.tpm is not None:
                log.entries[request_id] = _Entry(now, need)
                log.ids.append(request_id)
                log.tokens += need
        elif verdict in ("requests", "tokens"):
            retry_s = log.frees_s(now, (key.rpm or len(log.ids) + 1) - 1,
                                  (key.tpm - need) if key.tpm is not None else log.tokens)
        return Standing(verdict, len(log.ids), log.tokens, spent_usd, log.reset_s(now), retry_s)

    def settle(self, name: str, request_id: str, used: int) -> None:
        """The request ended having used ``used`` tokens: its entry counts them instead of its reservation."""
        log = self._logs.get(name)
        entry = log.entries.get(request_id) if log is not None else None
        if log is not None and entry is not None:
            log.tokens += used - entry.tokens
            entry.tokens = used

    def clear(self) -> None:
        self._logs.clear()


def judge(key: ApiKey, requests: int, tokens: int, need: int, spent_usd: float) -> Verdict:
    """The rule, on a window holding ``requests`` requests and ``tokens`` tokens before this one.

    The budget first (nothing else helps a key that spent its month); then a request larger than the whole
    token limit (never admissible, whatever the wait); then the two limits, requests first."""
    if key.monthly_budget_usd is not None and spent_usd >= key.monthly_budget_usd:
        return "budget"
    if key.tpm is not None and need > key.tpm:
        return "too_large"
    if key.rpm is not None and requests + 1 > key.rpm:
        return "requests"
    if key.tpm is not None and tokens + need > key.tpm:
        return "tokens"
    return "admitted"
