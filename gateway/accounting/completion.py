"""What a request was and how it ended, as values each stage returns and the ledger records once.

A request gathers three facts on its way, each an immutable value made by the stage that knows it:
``Arrival`` (intake: ids, caller, clock start), ``Routing`` (the decision: route, arm, target, the
experiment's variant, the classifier's score) and ``Delivery`` (the attempts: how many, which
fallbacks, upstream and retrieval time). ``finish`` turns them into the one ``Completion`` of the
request, with its status, usage and cost, for JSON replies, streams and failures alike; only that
value reaches the ledger and its hooks, so nothing is counted from a half-filled record.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.accounting.usage import Usage, cost_usd, format_cost
from policies import Target

_fill = object.__setattr__
"""How the per-request values set their fields: ``_fill(self, "__dict__", {...})``, one call for all of them.

A frozen dataclass's generated ``__init__`` calls ``object.__setattr__`` once per field (~1,400 instructions
each); these values are made several times a request, so the hot ones write their ``__dict__`` at once (half
the instructions) and stay frozen: assigning a field still raises ``FrozenInstanceError``."""


@dataclass(frozen=True, slots=True)
class Quota:
    """What intake granted a request of a key with limits (``gateway.keys``): the tokens it reserved in the key's
    per-minute window (settled against its real usage when it ends; None without a tokens limit), and the
    ``x-ratelimit-*`` headers."""

    reserved_tokens: int | None
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True, init=False)
class Arrival:
    """``request_id`` is the gateway's own (``gateway.pipeline.intake.new_request_id``), the key of every record
    made from this request; ``client_request_id`` is the caller's ``x-request-id``, echoed and logged only."""

    request_id: str
    endpoint: str
    client_request_id: str | None = None
    started: float = 0.0  # time.perf_counter() at arrival (``__init__`` reads the clock unless given one)
    owner: str | None = None  # the caller's key tag (gateway.pipeline.intake.authenticate); None while keys are off
    key: str | None = None  # the caller's key name (a named key of the keys file; a bounded label); else None
    quota: Quota | None = None  # what the key's limits granted (gateway.keys); None: a key without limits

    def __init__(self, request_id: str, endpoint: str, client_request_id: str | None = None,
                 started: float | None = None, owner: str | None = None, key: str | None = None,
                 quota: Quota | None = None) -> None:
        """``started``: now (``time.perf_counter``) unless given."""
        _fill(self, "__dict__", {"request_id": request_id, "endpoint": endpoint, "client_request_id": client_request_id,
                                "started": time.perf_counter() if started is None else started, "owner": owner,
                                "key": key, "quota": quota})

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def owned_by(self, owner: str | None, key: str | None = None) -> Arrival:
        """The same arrival, its caller known (authentication); direct, as ``replace`` costs ~3 us a request.

        Itself when the caller is the one it has (keys off: None), as the value would be equal anyway."""
        if owner == self.owner and key == self.key:
            return self
        return Arrival(self.request_id, self.endpoint, self.client_request_id, self.started, owner, key, self.quota)

    def admitted(self, quota: Quota) -> Arrival:
        """The same arrival, admitted by its key's limits."""
        return Arrival(self.request_id, self.endpoint, self.client_request_id, self.started, self.owner, self.key,
                       quota)

    def named(self) -> str:
        """How logs name a request: the gateway's id, and the caller's for correlation."""
        given = self.client_request_id
        return f"{self.request_id} (x-request-id {given})" if given else self.request_id


@dataclass(frozen=True, init=False)
class Routing:
    """Where the request was sent; after a fallback, ``arm`` and ``target`` are the ones that answered."""

    route: str = ""
    arm: str = ""
    target: str = ""
    stream: bool = False
    score: float | None = None
    experiment: str = ""
    variant: str = "none"
    keyed: bool = False
    feedback_token: str | None = None  # given to the caller of an experiment request, to send with feedback

    def __init__(self, route: str = "", arm: str = "", target: str = "", stream: bool = False,
                 score: float | None = None, experiment: str = "", variant: str = "none", keyed: bool = False,
                 feedback_token: str | None = None) -> None:
        _fill(self, "__dict__", {"route": route, "arm": arm, "target": target, "stream": stream, "score": score,
                                "experiment": experiment, "variant": variant, "keyed": keyed,
                                "feedback_token": feedback_token})

    def labels(self) -> tuple[str, str, str, str]:
        return (self.route or "unknown", self.arm or "none", self.target or "none", self.variant)


UNROUTED = Routing()
"""A request that failed before its route was known (authentication, a malformed body)."""


@dataclass(frozen=True, slots=True)
class PaidCall:
    """An upstream answer the request paid for and did not return: a cascade's rejected fine-tuned answer, an
    ensemble's other candidates, a judge's verdict.

    Its cost is part of the request's (``Completion.cost_usd``), booked under its own arm and target
    (``judge`` for a judge). ``routed``: routing alone would have made this call too (the fine-tuned answer a
    cascade rejected), which is how the economics view prices routing alone beside the strategy."""

    arm: str
    target: str
    usage: Usage
    cost_usd: float | None
    rejected_by: str  # why it was not returned: the acceptor, "unselected" (an ensemble's), "" (a judge)
    routed: bool = False


@dataclass(frozen=True, slots=True)
class Strategy:
    """What a cascade or an ensemble did with the request (``gateway.pipeline.cascade``, ``.ensemble``).

    ``outcome``: for a cascade accepted, escalated (the prompted arm answered), kept (the prompted arm failed
    after a rejection) or failed; for an ensemble the arm whose answer was returned, or failed. ``detail``:
    the ensemble's selector and the order its judge saw the candidates in. ``answer_routed``: the returned
    answer is the one routing alone would have returned."""

    name: str  # cascade | ensemble
    outcome: str
    rejected_by: str = ""  # a cascade's: the acceptor that rejected the fine-tuned answer ("error": it failed)
    calls: tuple[PaidCall, ...] = ()
    answer_routed: bool = True
    detail: str = ""


@dataclass(frozen=True, init=False)
class Delivery:
    """What getting the answer took: upstream attempts and fallbacks, retrieval, upstream time, and on a cascade
    or ensemble route what the strategy did and which other calls it paid for."""

    attempts: int = 0
    fallback: str = ""  # "from>to:trigger", comma-separated, as ``x-gateway-fallback`` shows it
    upstream_s: float = 0.0
    rag: str | None = None  # the retrieval's result (hit, miss, timeout, unavailable); None without knowledge
    rag_s: float = 0.0  # time retrieval added (queue wait, embedding, search)
    sources: str = ""
    strategy: Strategy | None = None
    cache: str = ""  # "" on a route without a cache (or a request it may not cache); else hit or miss
    saved_usd: float | None = None  # a hit's: what its answer cost when it was paid for

    def __init__(self, attempts: int = 0, fallback: str = "", upstream_s: float = 0.0, rag: str | None = None,
                 rag_s: float = 0.0, sources: str = "", strategy: Strategy | None = None, cache: str = "",
                 saved_usd: float | None = None) -> None:
        _fill(self, "__dict__", {"attempts": attempts, "fallback": fallback, "upstream_s": upstream_s, "rag": rag,
                                "rag_s": rag_s, "sources": sources, "strategy": strategy, "cache": cache,
                                "saved_usd": saved_usd})

    @property
    def calls(self) -> tuple[PaidCall, ...]:
        """The calls paid for beside the returned answer."""
        return self.strategy.calls if self.strategy is not None else ()

    @property
    def calls_cost_usd(self) -> float:
        """What the paid calls cost (unpriced ones count 0; the ledger counts them as unpriced)."""
        return sum(call.cost_usd or 0.0 for call in self.calls)

    def overhead_s(self, elapsed_s: float) -> float:
        """The gateway's own share of ``elapsed_s``: all of it but the time spent waiting on upstreams."""
        return max(elapsed_s - self.upstream_s, 0.0)

    def read_longer(self, read_s: float) -> Delivery:
        """The same delivery, ``read_s`` more upstream time (a stream's reads after its attempt); direct, as
        ``replace`` walks the fields (~3 us a stream)."""
        return Delivery(self.attempts, self.fallback, self.upstream_s + read_s, self.rag, self.rag_s, self.sources,
                        self.strategy, self.cache, self.saved_usd)


NOTHING_DELIVERED = Delivery()


@dataclass(frozen=True, slots=True)
class Exchange:
    """What a captured request said and got back, kept as it came: parsing and redaction happen in the
    capture writer (``gateway.capture``), off the request path. The gateway never edits these after sending."""

    client_messages: Sequence[Mapping[str, Any]]
    sent_messages: Sequence[Mapping[str, Any]]  # as sent upstream: the arm's prompt, context, then the client's
    answer: bytes | tuple[bytes, ...]  # a JSON reply's body, or a stream's data payloads


@dataclass(frozen=True, init=False)
class Completion:
    """One finished request: what the ledger turns into metrics, the access log line and its hooks' records."""

    arrival: Arrival
    routing: Routing
    delivery: Delivery
    status: int
    error_code: str | None
    usage: Usage | None
    cost_usd: float | None
    duration_s: float
    ttft_s: float | None
    exchange: Exchange | None = None  # only for a request its route captures

    def __init__(self, arrival: Arrival, routing: Routing, delivery: Delivery, status: int, error_code: str | None,
                 usage: Usage | None, cost_usd: float | None, duration_s: float, ttft_s: float | None,
                 exchange: Exchange | None = None) -> None:
        _fill(self, "__dict__", {"arrival": arrival, "routing": routing, "delivery": delivery, "status": status,
                                "error_code": error_code, "usage": usage, "cost_usd": cost_usd,
                                "duration_s": duration_s, "ttft_s": ttft_s, "exchange": exchange})

    @property
    def overhead_s(self) -> float:
        return self.delivery.overhead_s(self.duration_s)

    @property
    def answer_cost_usd(self) -> float | None:
        """The returned answer's own cost: ``cost_usd`` without the paid calls before it."""
        if not self.delivery.calls or self.cost_usd is None:
            return self.cost_usd
        return max(self.cost_usd - self.delivery.calls_cost_usd, 0.0)

    @property
    def routed_cost_usd(self) -> float:
        """What routing alone would have paid for this request: without a strategy, all of it; with one, the
        calls routing would have made (the answer, when it is routing's, and the routed paid calls)."""
        strategy = self.delivery.strategy
        if strategy is None:
            return self.cost_usd or 0.0
        answer = (self.answer_cost_usd or 0.0) if strategy.answer_routed else 0.0
        return answer + sum(call.cost_usd or 0.0 for call in strategy.calls if call.routed)


def format_calls(routing: Routing, delivery: Delivery, answer_cost: str) -> str:
    """``x-gateway-calls``: every upstream call a cascade or ensemble paid for, in order, the returned one last
    (``answer_cost``: its cost, or ``pending`` on a stream's head), as an HTTP structured-field list."""
    paid = [f'{call.arm};target="{call.target}";cost="{format_cost(call.cost_usd)}"'
            + (f';rejected="{call.rejected_by}"' if call.rejected_by else "") for call in delivery.calls]
    return ", ".join([*paid, f'{routing.arm};target="{routing.target}";cost="{answer_cost}"'])


def finish(arrival: Arrival, routing: Routing = UNROUTED, delivery: Delivery = NOTHING_DELIVERED, *,
           target: Target | None = None, usage: Usage | None = None, status: int = 200,
           error_code: str | None = None, ttft_s: float | None = None, exchange: Exchange | None = None) -> Completion:
    """The request's ``Completion``, now: its duration ends here and its cost is ``usage`` at ``target``'s price,
    plus what the delivery's paid calls cost (``answer_cost_usd`` takes them out again). A cache hit paid for
    nothing: it has no usage and costs 0."""
    if delivery.cache == "hit":
        return Completion(arrival, routing, delivery, status, error_code, None, 0.0, arrival.elapsed(), ttft_s,
                          exchange)
    cost = cost_usd(target, usage) if usage is not None else None
    if delivery.calls:
        cost = (cost or 0.0) + delivery.calls_cost_usd
    return Completion(arrival, routing, delivery, status, error_code, usage, cost, arrival.elapsed(), ttft_s,
                      exchange)
