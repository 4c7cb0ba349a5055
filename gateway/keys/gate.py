"""The check of a named key at intake (its routes, then its limits), and its settlement when the request ends.

``KeyGate.admit`` runs after authentication and body validation, before any routing work. A key may call
only the models its ``routes`` list (else 404 ``model_not_found``, as OpenAI answers a key without access to
a model: the SDKs raise ``NotFoundError``, and a key learns nothing about routes it may not call). A key with
limits is then judged (``gateway.keys.windows``): refused with 429 ``rate_limit_exceeded`` (requests or
tokens per minute) or ``insufficient_quota`` (the month's budget), with OpenAI's ``x-ratelimit-*`` headers,
which an admitted request's answer carries too (``Quota`` on its ``Arrival``).

A request is counted at admission for its estimated prompt tokens plus ``max_completion_tokens`` (or
``max_tokens``) times ``n``, and settled, as a ledger hook, to the tokens its answer really used (its
cascade's paid calls included) and to its cost, which is what the budget counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gateway.accounting.completion import Arrival, Completion, Quota
from gateway.accounting.usage import estimate_prompt_tokens
from gateway.api_keys import ApiKey
from gateway.errors import GatewayError, ModelNotFound, QuotaExceeded, RateLimited
from gateway.keys.counters import KeyCounters
from gateway.keys.windows import Standing, month_of
from gateway.protocol import ChatCompletionRequest


def chat_tokens(messages: Sequence[Mapping[str, Any]], chat: ChatCompletionRequest) -> int:
    """What a chat request is counted for at admission: its prompt's estimate and the most it may generate
    (nothing more when it sets no ``max_tokens``: its answer is counted when it ends)."""
    most = chat.max_completion_tokens or chat.max_tokens or 0
    return estimate_prompt_tokens(messages) + most * (chat.n or 1)


def duration(seconds: float) -> str:
    """A wait as OpenAI's ``x-ratelimit-reset-*`` headers give it: ``250ms``, ``1.5s``, ``1m0s``."""
    ms = math.ceil(max(seconds, 0.0) * 1000)
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    minutes, rest = divmod(ms, 60_000)
    return f"{minutes}m{rest / 1000:g}s" if minutes else f"{rest / 1000:g}s"


def rate_headers(key: ApiKey, standing: Standing) -> tuple[tuple[str, str], ...]:
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` for the limits the key has."""
    headers: list[tuple[str, str]] = []
    if key.rpm is not None:
        headers += [("x-ratelimit-limit-requests", str(key.rpm)),
                    ("x-ratelimit-remaining-requests", str(max(key.rpm - standing.requests, 0))),
                    ("x-ratelimit-reset-requests", duration(standing.reset_s))]
    if key.tpm is not None:
        headers += [("x-ratelimit-limit-tokens", str(key.tpm)),
                    ("x-ratelimit-remaining-tokens", str(max(key.tpm - standing.tokens, 0))),
                    ("x-ratelimit-reset-tokens", duration(standing.reset_s))]
    return tuple(headers)


def _refusal(key: ApiKey, standing: Standing, need: int, headers: dict[str, str], now: float) -> GatewayError:
    """The 429 for a refused request, in OpenAI's words; ``retry-after`` when waiting helps, else
    ``x-should-retry: false`` so the SDKs do not retry in vain."""
    verdict, name = standing.verdict, key.name
    if verdict == "budget":
        return QuotaExceeded(f"Key '{name}' has used its monthly budget: ${standing.spent_usd:.6f} of "
                             f"${key.monthly_budget_usd:.6f} spent in {month_of(now)} (UTC). It renews at the "
                             "start of next month.", headers={**headers, "x-should-retry": "false"})
    if verdict == "too_large":
        return RateLimited(f"Request too large for key '{name}' on tokens per min (TPM): Limit {key.tpm}, "
                           f"Requested {need}. Send a shorter prompt or a lower max_tokens.",
                           headers={**headers, "x-should-retry": "false"})
    wait = {"retry-after": str(max(math.ceil(standing.retry_after_s), 1)),
            "retry-after-ms": str(max(math.ceil(standing.retry_after_s * 1000), 1))}
    if verdict == "requests":
        return RateLimited(f"Rate limit reached for key '{name}' on requests per min (RPM): Limit {key.rpm}, "
                           f"Used {standing.requests}, Requested 1. Please try again in "
                           f"{duration(standing.retry_after_s)}.", headers={**headers, **wait})
    return RateLimited(f"Rate limit reached for key '{name}' on tokens per min (TPM): Limit {key.tpm}, "
                       f"Used {standing.tokens}, Requested {need}. Please try again in "
                       f"{duration(standing.retry_after_s)}.", headers={**headers, **wait})


def _used_tokens(done: Completion) -> int:
    """Every token the request was billed for: its answer's and its cascade's paid calls'."""
    used = done.usage.total_tokens if done.usage is not None else 0
    return used + sum(call.usage.total_tokens for call in done.delivery.calls)


class KeyGate:
    """``admit`` at intake; called with each ``Completion`` (a ledger hook), settles it. ``clock``: epoch seconds."""

    def __init__(self, counters: KeyCounters, clock: Callable[[], float]) -> None:
        self._counters = counters
        self._clock = clock

    async def admit(self, arrival: Arrival, key: ApiKey, model: str, tokens: Callable[[], int]) -> Arrival:
        """``arrival`` admitted under ``key``'s limits to call ``model``; ``tokens`` counts what it asks for
        (called only for a key with a tokens limit). Raises the refusal otherwise.

        Callers skip it for a caller without a named key: no coroutine on the hot path of every request."""
        if not key.may_call(model):
            raise ModelNotFound(f"The model '{model}' does not exist or you do not have access to it.", param="model")
        if not key.limited:
            return arrival
        need = tokens() if key.tpm is not None else 0
        now = self._clock()
        standing = await self._counters.admit(key, arrival.request_id, need, now)
        headers = rate_headers(key, standing)
        if standing.verdict != "admitted":
            raise _refusal(key, standing, need, dict(headers), now)
        return arrival.admitted(Quota(need if key.tpm is not None else None, headers))

    def __call__(self, done: Completion) -> None:
        arrival = done.arrival
        if arrival.key is None:
            return
        reserved = arrival.quota.reserved_tokens if arrival.quota is not None else None
        self._counters.settle(arrival.key, arrival.request_id, reserved, _used_tokens(done), done.cost_usd or 0.0,
                              self._clock())

    async def aclose(self) -> None:
        await self._counters.aclose()
