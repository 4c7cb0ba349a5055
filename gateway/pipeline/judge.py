"""A judge target asked about answers: a cascade's last acceptor (yes or no) or an ensemble's selector (which one).

The judge is an upstream call like any other, made with its own timeout inside the request's deadline and
priced at its target's price: its ``PaidCall`` (arm ``judge``) joins the request's cost whatever it said.
What it reads is bounded (``MAX_CHARS`` of the request and of each answer), so a long conversation cannot
make the judge's bill or memory grow without limit. A judge that fails, or answers neither what it was
asked nor anything parseable, gives a ``Ruling`` whose ``reply`` is empty or unusable: the caller decides
what that means (a cascade's ``on_error``; an ensemble keeps the routed arm's answer).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.accounting.completion import PaidCall
from gateway.accounting.usage import completion_text, cost_usd, reply_usage
from gateway.errors import GatewayError
from gateway.upstream import Upstreams
from policies import Judge, PolicySet

MAX_CHARS = 8_000
"""How much of the request, and of each answer, the judge reads."""

ACCEPT_QUESTION = "Does the answer fully and correctly answer the request?"
CHOOSE_QUESTION = "Which answer answers the request best?"
_ACCEPT_SYSTEM = "You check an assistant's answer before it is sent. Reply with one word: yes or no."
_CHOOSE_SYSTEM = "You compare candidate answers to a request. Reply with the number of the best answer only."
_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True, slots=True)
class Ruling:
    """What the judge replied ("" when its call failed), its paid call (None then) and how long it took."""

    reply: str
    call: PaidCall | None
    seconds: float

    def says_yes(self) -> bool | None:
        """True for yes, False for no, None for anything else."""
        word = self.reply.strip().split(maxsplit=1)[0].strip(".,!:;\"'").lower() if self.reply.strip() else ""
        return {"yes": True, "no": False}.get(word)

    def chosen(self, candidates: int) -> int | None:
        """The 0-based candidate the judge named, if it named one of ``candidates``."""
        found = _NUMBER.search(self.reply)
        number = int(found.group()) if found else 0
        return number - 1 if 1 <= number <= candidates else None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content
                        if isinstance(part, Mapping) and isinstance(part.get("text"), str))
    return ""


def request_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The client's last user message: what the answers answer."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text(message.get("content"))[:MAX_CHARS]
    return ""


class JudgeCaller:
    """Asks the judges of one policy snapshot through the gateway's upstream clients."""

    def __init__(self, policy: PolicySet, upstreams: Upstreams) -> None:
        self._policy = policy
        self._upstreams = upstreams

    async def accepts(self, judge: Judge, request: str, answer: str, deadline: float) -> Ruling:
        """Ask whether ``answer`` answers ``request``."""
        question = judge.question or ACCEPT_QUESTION
        prompt = f"{question}\n\nThe request:\n{request}\n\nThe answer:\n{answer[:MAX_CHARS]}"
        return await self._ask(judge, _ACCEPT_SYSTEM, prompt, deadline)

    async def chooses(self, judge: Judge, request: str, answers: Sequence[str], deadline: float) -> Ruling:
        """Ask which of ``answers`` (numbered from 1, in the order given) answers ``request`` best."""
        question = judge.question or CHOOSE_QUESTION
        listed = "\n\n".join(f"Answer {n}:\n{answer[:MAX_CHARS]}" for n, answer in enumerate(answers, 1))
        return await self._ask(judge, _CHOOSE_SYSTEM, f"{question}\n\nThe request:\n{request}\n\n{listed}", deadline)

    async def _ask(self, judge: Judge, system: str, prompt: str, deadline: float) -> Ruling:
        name, target = self._policy.target(judge.target)
        messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        payload = {"model": target.model, "messages": messages, "temperature": 0, "max_tokens": 8}
        started = time.monotonic()
        try:
            async with asyncio.timeout(max(min(judge.timeout_s, deadline - started), 0.0)):
                reply = await self._upstreams.for_target(target).complete(target, payload)
        except (GatewayError, TimeoutError):
            return Ruling("", None, time.monotonic() - started)
        usage = reply_usage(reply.data, messages)
        call = PaidCall("judge", name, usage, cost_usd(target, usage), "")
        return Ruling(completion_text(reply.data), call, time.monotonic() - started)
