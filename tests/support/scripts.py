"""What the fake upstreams share: the requests they received, and what they do next, scripted per model.

A fake upstream serves every call a test causes at once: the client's request,
its retries, a fallback to another model, a shadow mirror running in the
background. With one queue for all of them, a failure meant for the fine-tuned
model went to whichever call came first, and a shadow's call could take it (a
race that happened). A queue per model (the ``model`` the gateway put in the
body it sent upstream) makes a script say which model answers how, so the order
in which different models are called no longer matters; a model with nothing
queued gets the default answer.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, Protocol, Self, TypeVar

import orjson
from starlette.requests import Request

A = TypeVar("A")


class ScriptedUpstream(Generic[A]):
    """Records every request; hands each the next action queued for its model, or the default one.

    Tests queue from their own thread while the fake's server takes from another: the queues are locked.
    """

    def __init__(self, default: Callable[[], A]) -> None:
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._default = default
        self._queues: dict[str, collections.deque[A]] = {}
        self._lock = threading.Lock()

    def script_for(self, model: str, *actions: A) -> Self:
        """Queue ``actions`` for the next requests whose body names ``model``, in order."""
        with self._lock:
            self._queues.setdefault(model, collections.deque()).extend(actions)
        return self

    def unmet(self) -> dict[str, list[A]]:
        """The scripted actions no request has taken yet, by model: empty when the script was played out."""
        with self._lock:
            return {model: list(queue) for model, queue in self._queues.items() if queue}

    def reset(self) -> None:
        with self._lock:
            self._queues.clear()
        self.received.clear()
        self.headers.clear()

    async def take(self, request: Request) -> tuple[dict[str, Any], A]:
        """Record ``request``; its JSON body and the action it is to get."""
        body: dict[str, Any] = orjson.loads(await request.body())
        self.received.append(body)
        self.headers.append(dict(request.headers))
        with self._lock:
            queue = self._queues.get(str(body.get("model", "")))
            if queue:
                return body, queue.popleft()
        return body, self._default()


class Scripted(Protocol):
    def unmet(self) -> Mapping[str, Sequence[object]]: ...

    def reset(self) -> None: ...


F = TypeVar("F", bound=Scripted)


@contextlib.contextmanager
def played_out(fake: F) -> Iterator[F]:
    """``fake`` emptied for one test; afterwards, every action the test scripted must have been taken.

    An action left over means the test scripted a model its requests never called (a typo, or the
    wrong target's model), and so checked less than it says; a test that means to leave some calls
    ``reset()``. The fake is emptied either way, so what one test left never reaches the next.
    """
    fake.reset()
    try:
        yield fake
        unmet = fake.unmet()
    finally:
        fake.reset()
    assert not unmet, f"scripted but never requested: {unmet}"
