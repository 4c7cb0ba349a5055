"""``strategy: cascade``: the fine-tuned arm answers first; the prompted arm only when that answer is rejected.

A request the route would send to its fine-tuned arm is served through that arm's
plan (its retries and fallback chain included), and the answer goes through the
route's acceptors (``gateway.pipeline.acceptors``), the judge last and only when every
local check passed. Accepted, it is returned; rejected, or when the fine-tuned arm
failed, the request goes on to the prompted arm's own plan (its prompt, few-shot and
knowledge), within the same deadline. A streamed fine-tuned answer is read whole before
it is judged and then replayed, so the client sees either it or the prompted arm's
stream, never a mix. When the prompted arm fails too, the rejected answer is returned
rather than an error (``kept``). The rejected answer and the judge's verdict were paid
for: they leave as ``PaidCall``\\ s, which the request's cost and the ledger include once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.accounting.completion import PaidCall, Strategy
from gateway.errors import GatewayError
from gateway.pipeline.acceptors import rejection
from gateway.pipeline.attempts import Answered, Effort, Exhausted
from gateway.pipeline.candidates import (
    Judged,
    Run,
    Served,
    asking_logprobs,
    read_whole,
    together,
    with_effort,
)
from gateway.pipeline.judge import JudgeCaller, request_text
from gateway.pipeline.plan import Plan
from policies import Acceptors


@dataclass(frozen=True, slots=True)
class _Verdict:
    rejected_by: str | None
    judge_call: PaidCall | None
    judge_s: float


async def _verdict(acceptors: Acceptors, judged: Judged, payload: dict[str, Any], judges: JudgeCaller,
                   deadline: float) -> _Verdict:
    """The local acceptors' verdict, then the judge's when they all accepted and the route has one."""
    rejected = rejection(acceptors, judged.choices, payload)
    judge = acceptors.judge
    if rejected is not None or judge is None:
        return _Verdict(rejected, None, 0.0)
    answer = "\n".join(choice.text for choice in judged.choices)
    ruling = await judges.accepts(judge, request_text(judged.plan.payload["messages"]), answer, deadline)
    says = ruling.says_yes()
    if says is None:
        says = judge.on_error == "accept"
    return _Verdict(None if says else ("judge" if ruling.reply else "judge_error"), ruling.call, ruling.seconds)


async def cascade(run: Run, first: Plan, escalation: Callable[[], Plan], acceptors: Acceptors, judges: JudgeCaller,
                  deadline: float, max_bytes: int) -> Served:
    """Serve ``first`` (the fine-tuned arm's plan), judge its answer, and escalate to ``escalation()`` (the
    prompted arm's plan, built only then) when it is rejected or failed; ``deadline`` (time.monotonic())
    bounds all of it."""
    asking, strip = asking_logprobs(first, acceptors)
    attempted = await run(asking)
    if attempted.plan.arm != first.arm:  # the arm's own fallback chain reached another arm: it has answered
        outcome = "failed" if isinstance(attempted, Exhausted) else "escalated"
        return Served(attempted, Strategy("cascade", outcome, "error"))
    judged = None
    if isinstance(attempted, Answered):
        with contextlib.suppress(GatewayError):  # the fine-tuned stream broke or ran out of time while read
            judged = await read_whole(attempted, strip, deadline, max_bytes)
    if judged is None:  # the fine-tuned arm gave no answer: the prompted arm's is the only one
        escalated = await run(escalation())
        outcome = "failed" if isinstance(escalated, Exhausted) else "escalated"
        return Served(with_effort(escalated, together(attempted.effort, escalated.effort)),
                        Strategy("cascade", outcome, "error"))
    verdict = await _verdict(acceptors, judged, first.payload, judges, deadline)
    judging = (verdict.judge_call,) if verdict.judge_call is not None else ()
    effort = together(judged.effort, Effort(0, (), verdict.judge_s))
    if verdict.rejected_by is None:
        return Served(Answered(judged.plan, judged.result, effort), Strategy("cascade", "accepted", calls=judging))
    escalated = await run(escalation())
    both = together(effort, escalated.effort)
    if isinstance(escalated, Exhausted):  # a rejected answer beats an error
        return Served(Answered(judged.plan, judged.result, both),
                        Strategy("cascade", "kept", verdict.rejected_by, judging))
    calls = (judged.paid(verdict.rejected_by, routed=True), *judging)
    return Served(Answered(escalated.plan, escalated.result, both),
                    Strategy("cascade", "escalated", verdict.rejected_by, calls, answer_routed=False))
