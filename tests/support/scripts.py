"""What a fake upstream does next, queued per model.

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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Generic, Protocol, TypeVar

A = TypeVar("A")


class ModelScripts(Generic[A]):
    """Queues of actions keyed by model; filled by the test's thread, emptied by the fake server's."""

    def __init__(self, default: Callable[[], A]) -> None:
        self._default = default
        self._queues: dict[str, collections.deque[A]] = {}
        self._lock = threading.Lock()

    def add(self, model: str, actions: Iterable[A]) -> None:
        with self._lock:
            self._queues.setdefault(model, collections.deque()).extend(actions)

    def next(self, model: str) -> A:
        """The next action queued for ``model``, or the default answer when none is."""
        with self._lock:
            queue = self._queues.get(model)
            if queue:
                return queue.popleft()
        return self._default()

    def unmet(self) -> dict[str, list[A]]:
        """The actions no request has taken yet, by model: empty when the script was played out."""
        with self._lock:
            return {model: list(queue) for model, queue in self._queues.items() if queue}

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()


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
