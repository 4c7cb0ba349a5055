"""``strategy: ensemble``: both arms answer, in parallel, and a selector picks the answer (the guide's Pattern 4).

Each candidate is a plan served as any request is (its arm's prompt, knowledge, retries, breakers and
fallback chain) within the request's deadline; ``samples`` calls per arm give voting something to count.
Once one candidate has answered, the others get ``patience_s`` more (the deadline when unset); a late one is
cancelled, a failed one is left out: neither fails the request while another answered. The candidates that
pass the route's acceptors are the ones chosen from (all that answered, when none passes). Selectors:

- ``first_accepted``: the first to arrive;
- ``vote``: the answer most candidates gave, compared after normalising case, spaces and end punctuation;
  a tie goes to the routed arm's answer (what routing alone would have returned), else the earliest plan;
- ``judge``: a judge target names the best, the candidates shown in a shuffled order that the
  ``x-gateway-ensemble-detail`` header records (position bias is then visible and averages out); a judge
  that fails or names none leaves the routed arm's answer.

Every answer that was not returned, and the judge's verdict, is a ``PaidCall`` of the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.accounting.completion import PaidCall, Strategy
from gateway.errors import GatewayError
from gateway.pipeline.acceptors import rejection
from gateway.pipeline.attempts import Answered, Effort
from gateway.pipeline.candidates import (
    Attempted,
    Judged,
    Run,
    Served,
    asking_logprobs,
    read_whole,
    with_effort,
)
from gateway.pipeline.judge import JudgeCaller, Ruling, request_text
from gateway.pipeline.plan import Plan
from policies import Acceptors, Ensemble


@dataclass(frozen=True, slots=True)
class _Candidate:
    index: int  # its plan's place: 0 is the routed arm's first
    attempted: Attempted
    judged: Judged | None  # None when it failed, or broke while read

    @property
    def text(self) -> str:
        return self.judged.choices[0].text if self.judged is not None and self.judged.choices else ""


async def _candidate(run: Run, index: int, plan: Plan, strip: bool, deadline: float, max_bytes: int) -> _Candidate:
    attempted = await run(plan)
    judged = None
    if isinstance(attempted, Answered):
        with contextlib.suppress(GatewayError):
            judged = await read_whole(attempted, strip, deadline, max_bytes)
    return _Candidate(index, attempted, judged)


async def _gather(tasks: Sequence[asyncio.Task[_Candidate]], patience_s: float | None) -> tuple[list[_Candidate], int]:
    """The candidates in the order they finished, and how many were cancelled for being late."""
    pending: set[asyncio.Task[_Candidate]] = set(tasks)
    finished: list[_Candidate] = []
    until: float | None = None
    try:
        while pending:
            timeout = None if until is None else max(until - time.monotonic(), 0.0)
            done, pending = await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                break
            for candidate in sorted((task.result() for task in done), key=lambda c: c.index):
                finished.append(candidate)
                if candidate.judged is not None and until is None and patience_s is not None:
                    until = time.monotonic() + patience_s
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return finished, len(pending)


def _normalised(text: str) -> str:
    return " ".join(text.lower().split()).strip(" .!?")


def _voted(pool: Sequence[_Candidate]) -> _Candidate:
    counts = Counter(_normalised(candidate.text) for candidate in pool)
    most = max(counts.values())
    tied = [candidate for candidate in pool if counts[_normalised(candidate.text)] == most]
    return min(tied, key=lambda c: c.index)


@dataclass(frozen=True, slots=True)
class _Choice:
    chosen: _Candidate
    detail: str
    ruling: Ruling | None = None


async def _select(spec: Ensemble, pool: list[_Candidate], judges: JudgeCaller, deadline: float) -> _Choice:
    if spec.selector == "first_accepted":
        return _Choice(pool[0], "selector=first_accepted")
    if spec.selector == "vote":
        chosen = _voted(pool)
        agreeing = sum(_normalised(c.text) == _normalised(chosen.text) for c in pool)
        return _Choice(chosen, f"selector=vote;agreeing={agreeing}/{len(pool)}")
    fallback = min(pool, key=lambda c: c.index)
    if len(pool) == 1 or spec.judge is None:
        return _Choice(fallback, "selector=judge;candidates=1")
    order = random.sample(pool, len(pool))
    shown = ",".join(c.attempted.plan.arm for c in order)
    request = request_text(order[0].attempted.plan.payload["messages"])
    ruling = await judges.chooses(spec.judge, request, [c.text for c in order], deadline)
    picked = ruling.chosen(len(order))
    if picked is None:
        return _Choice(fallback, f"selector=judge;order={shown};verdict=none", ruling)
    return _Choice(order[picked], f"selector=judge;order={shown};verdict={picked + 1}", ruling)


def _effort(candidates: Sequence[_Candidate], judge_s: float) -> Effort:
    """Candidates ran side by side: their attempts add up, their upstream time is the longest one's."""
    efforts = [c.judged.effort if c.judged is not None else c.attempted.effort for c in candidates]
    return Effort(sum(e.attempts for e in efforts), tuple(f for e in efforts for f in e.fallbacks),
                  max((e.upstream_s for e in efforts), default=0.0) + judge_s)


async def ensemble(run: Run, plans: Sequence[Plan], spec: Ensemble, acceptors: Acceptors, judges: JudgeCaller,
                   deadline: float, max_bytes: int) -> Served:
    """Serve every plan of ``plans`` at once (``plans[0]``: the routed arm's) and return the selected answer."""
    asking = [asking_logprobs(plan, acceptors) for plan in plans]
    tasks = [asyncio.create_task(_candidate(run, index, plan, strip, deadline, max_bytes))
             for index, (plan, strip) in enumerate(asking)]
    finished, late = await _gather(tasks, spec.patience_s)
    lateness = f";late={late}" if late else ""
    answered = [c for c in finished if c.judged is not None]
    if not answered:  # then none was cut short either: patience starts with the first answer
        routed = min(finished, key=lambda c: c.index)
        return Served(with_effort(routed.attempted, _effort(finished, 0.0)),
                         Strategy("ensemble", "failed", detail=f"selector={spec.selector}{lateness}"))
    passing = [c for c in answered if c.judged is not None
               and rejection(acceptors, c.judged.choices, c.attempted.plan.payload) is None]
    choice = await _select(spec, passing or answered, judges, deadline)
    chosen = choice.chosen
    assert chosen.judged is not None  # the pool holds answered candidates only
    routed_answered = any(c.index == 0 for c in answered)
    calls: list[PaidCall] = [c.judged.paid("unselected", routed=c.index == 0)
                             for c in answered if c is not chosen and c.judged is not None]
    ruling = choice.ruling
    if ruling is not None and ruling.call is not None:
        calls.append(ruling.call)
    effort = _effort(finished, ruling.seconds if ruling is not None else 0.0)
    detail = choice.detail + (f";rejected={len(answered) - len(passing)}" if passing != answered else "") + lateness
    strategy = Strategy("ensemble", chosen.attempted.plan.arm, calls=tuple(calls),
                        answer_routed=chosen.index == 0 or not routed_answered, detail=detail)
    return Served(Answered(chosen.judged.plan, chosen.judged.result, effort), strategy)


def candidate_plans(routed: Plan, other: Plan, samples: int) -> list[Plan]:
    """The ensemble's plans: the routed arm's ``samples`` times, then the other arm's."""
    return [routed] * samples + [other] * samples

