"""The record of served requests and their feedback, which experiment reports are built from.

Every request served inside an experiment leaves an ``Outcome``, keyed on the
gateway's own (unguessable) request id; clients may later send ``Feedback`` for it
by that id, if they made the request with the same key or hold its feedback token
(``Outcome.answers_to``). One feedback per request counts: a second
one is refused (``FeedbackExists``) unless the caller asks to replace, and then the
latest wins (by its ``at``, so a replayed old feedback never overwrites a newer one).

Two stores share the ``OutcomeStore`` protocol:

* ``LocalOutcomes`` appends JSON lines to one file. It is the store of a single
  replica without Redis, and the journal of ``SharedOutcomes`` during an outage.
* ``SharedOutcomes`` keeps the record in Redis so any replica can take feedback
  for any request and the report sees all replicas. While Redis is down it writes
  to its ``LocalOutcomes`` and, when Redis returns, replays that journal from a
  persisted cursor, so each entry reaches Redis once even across a restart of the
  gateway in between (and the writes are idempotent should a crash land between
  a write and the cursor update).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from policies.runtime.shared_state import Script, SharedState

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("hybrid_gateway.policies")

MAX_COMMENT_CHARS = 2000
DEFAULT_TTL_S = 30 * 24 * 3600.0
_REPLAY_BATCH = 200
_READ_CHUNK = 500


@dataclass(frozen=True)
class Outcome:
    """One served request of an experiment: who got what, from where, how it went and what it cost.

    ``crossed`` marks a fallback that crossed variants (served by the other side), which
    reports keep apart; ``keyed`` marks sticky assignment (see ``policies.experiments.assignment``).
    ``owner`` tags the API key that made the request (None without keys) and ``token`` is the
    ``token_digest`` of the feedback token its caller was given: who may give feedback on it.
    Outcomes recorded before these existed have neither, so take no feedback.
    """

    request_id: str
    experiment: str
    variant: str
    route: str
    arm: str
    target: str
    status: int
    latency_ms: float
    cost_usd: float | None
    crossed: bool
    keyed: bool
    at: float
    owner: str | None = None
    token: str | None = None

    def answers_to(self, owner: str | None, token: str | None) -> bool:
        """Whether feedback from the key tagged ``owner``, carrying ``token``, may judge this request."""
        return may_judge(owner, token, self.owner, self.token)


def may_judge(owner: str | None, token: str | None, made_by: str | None, digest: str | None) -> bool:
    """Feedback from the key tagged ``owner`` carrying ``token`` may judge a request made by the key tagged
    ``made_by`` whose feedback token's digest is ``digest``: the same key, or the token's holder."""
    if token is not None and digest is not None and hmac.compare_digest(token_digest(token), digest):
        return True
    return owner is not None and made_by is not None and hmac.compare_digest(owner, made_by)


def token_digest(token: str) -> str:
    """What is stored of a feedback token: its SHA-256, so reading the record does not grant feedback."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Feedback:
    """A client's judgement of one request; the comment is cut to ``MAX_COMMENT_CHARS``."""

    request_id: str
    score: float | None
    success: bool | None
    comment: str | None
    at: float

    def __post_init__(self) -> None:
        if self.comment is not None and len(self.comment) > MAX_COMMENT_CHARS:
            object.__setattr__(self, "comment", self.comment[:MAX_COMMENT_CHARS])


Row = tuple[Outcome, Feedback | None]
#: A request looked up in Redis: its outcome (None: unknown) and the earlier feedback that refused a new one.
#: A tuple, so "unknown" differs from ``SharedState.run``'s None on failure.
_Found = tuple[Outcome | None, Feedback | None]
_Record = TypeVar("_Record", Outcome, Feedback)


class OutcomesUnavailable(RuntimeError):
    """Feedback for a request this replica cannot look up because Redis is down (answer 503, not 404)."""


class FeedbackExists(Exception):
    """The request already has feedback and the new one did not ask to replace it."""

    def __init__(self, previous: Feedback) -> None:
        super().__init__(f"request {previous.request_id!r} already has feedback")
        self.previous = previous


class OutcomeStore(Protocol):
    async def record(self, outcome: Outcome) -> None:
        """Keep one served request."""
        ...

    async def outcome(self, request_id: str) -> Outcome | None:
        """The outcome recorded for ``request_id``, or None when it is unknown."""
        ...

    async def add_feedback(self, feedback: Feedback, *, replace: bool = True) -> Outcome | None:
        """Attach feedback; the request's outcome, or None when the request id is unknown.

        With ``replace=False`` a request that already has feedback raises ``FeedbackExists``.
        """
        ...

    async def rows(self, experiment: str) -> list[Row]:
        """Every outcome of ``experiment`` in serving order, with its latest feedback."""
        ...


def _to_json(record: Outcome | Feedback) -> str:
    return json.dumps(dataclasses.asdict(record), separators=(",", ":"))


def _from_dict(cls: type[_Record], data: dict[str, Any]) -> _Record:
    # Only known fields: a journal written by a newer version still loads.
    values: dict[str, Any] = {f.name: data.get(f.name) for f in dataclasses.fields(cls)}
    return cls(**values)


def _newer(new: Feedback, old: Feedback | None) -> bool:
    return old is None or new.at >= old.at


class LocalOutcomes:
    """Append-only JSON lines in ``<directory>/outcomes.jsonl``, indexed in memory on first use.

    Safe for one process (a lock serialises its appends and index). Other store objects
    and processes reading the same directory see new lines, because every call first
    reads what was appended since its last look; several processes *writing* one
    directory is not supported. The whole record is held in memory.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / "outcomes.jsonl"
        self._lock = threading.Lock()
        self._offset = 0
        self._outcomes: dict[str, Outcome] = {}
        self._feedback: dict[str, Feedback] = {}
        self._by_experiment: dict[str, dict[str, None]] = {}

    async def record(self, outcome: Outcome) -> None:
        await asyncio.to_thread(self._locked_append, outcome)

    async def add_feedback(self, feedback: Feedback, *, replace: bool = True) -> Outcome | None:
        return await asyncio.to_thread(self._add_feedback, feedback, replace)

    async def rows(self, experiment: str) -> list[Row]:
        return await asyncio.to_thread(self._rows, experiment)

    async def outcome(self, request_id: str) -> Outcome | None:
        """The outcome recorded for ``request_id`` in this directory, if any."""
        return await asyncio.to_thread(self._lookup, request_id)

    def entries_since(self, offset: int) -> list[tuple[Outcome | Feedback, int]]:
        """Journal entries after byte ``offset``, each with the offset just past its line."""
        entries: list[tuple[Outcome | Feedback, int]] = []
        for line, end in _lines(self.path, offset):
            entries.append((_parse(line), end))
        return entries

    def size(self) -> int:
        """Bytes in the journal (0 before the first write)."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def _locked_append(self, record: Outcome | Feedback) -> None:
        with self._lock:
            self._append(record)

    def _append(self, record: Outcome | Feedback) -> None:
        kind = "outcome" if isinstance(record, Outcome) else "feedback"
        line = json.dumps({"kind": kind, "data": dataclasses.asdict(record)}, separators=(",", ":")) + "\n"
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as journal:  # O_APPEND: one write per line
            journal.write(line.encode())
        self._refresh()

    def _add_feedback(self, feedback: Feedback, replace: bool) -> Outcome | None:
        with self._lock:
            self._refresh()
            outcome = self._outcomes.get(feedback.request_id)
            previous = self._feedback.get(feedback.request_id)
            if previous is not None and not replace:
                raise FeedbackExists(previous)
            if outcome is not None:
                self._append(feedback)
            return outcome

    def _rows(self, experiment: str) -> list[Row]:
        with self._lock:
            self._refresh()
            ids = self._by_experiment.get(experiment, {})
            return [(self._outcomes[i], self._feedback.get(i)) for i in ids]

    def _lookup(self, request_id: str) -> Outcome | None:
        with self._lock:
            self._refresh()
            return self._outcomes.get(request_id)

    def _refresh(self) -> None:
        """Index the lines appended since the last look (by anyone); start over if the file shrank."""
        if self.size() < self._offset:
            self._offset = 0
            self._outcomes.clear()
            self._feedback.clear()
            self._by_experiment.clear()
        for line, end in _lines(self.path, self._offset):
            self._index(_parse(line))
            self._offset = end

    def _index(self, record: Outcome | Feedback) -> None:
        if isinstance(record, Outcome):
            self._outcomes[record.request_id] = record
            self._by_experiment.setdefault(record.experiment, {})[record.request_id] = None
        elif record.request_id in self._outcomes and _newer(record, self._feedback.get(record.request_id)):
            self._feedback[record.request_id] = record


def _lines(path: Path, offset: int) -> Iterable[tuple[bytes, int]]:
    """Complete lines after ``offset``; a line still being written (no newline yet) waits."""
    try:
        with path.open("rb") as journal:
            journal.seek(offset)
            data = journal.read()
    except FileNotFoundError:
        return []
    lines = []
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        offset += len(line)
        if line.strip():
            lines.append((line, offset))
    return lines


def _parse(line: bytes) -> Outcome | Feedback:
    entry = json.loads(line)
    if entry["kind"] == "outcome":
        return _from_dict(Outcome, entry["data"])
    return _from_dict(Feedback, entry["data"])


# KEYS: request hash. ARGV: feedback json, feedback at, "1" to replace an earlier feedback else "0".
# Returns nil if the request is unknown, {outcome json} once written, {outcome json, earlier feedback
# json} when it was refused (an earlier feedback exists and ARGV[3] is "0").
_FEEDBACK = Script("""
local outcome = redis.call('HGET', KEYS[1], 'outcome')
if not outcome then return false end
local previous = redis.call('HGET', KEYS[1], 'feedback')
if previous and ARGV[3] == '0' then return {outcome, previous} end
local at = tonumber(redis.call('HGET', KEYS[1], 'feedback_at'))
if (not at) or tonumber(ARGV[2]) >= at then
  redis.call('HSET', KEYS[1], 'feedback', ARGV[1], 'feedback_at', ARGV[2])
end
return {outcome}
""")


class SharedOutcomes:
    """The record in Redis, with a ``LocalOutcomes`` journal for outages.

    Keys: ``{prefix}outcome:<request_id>`` a hash (outcome, feedback, feedback_at json)
    expiring ``ttl_s`` after the request; ``{prefix}experiment:<name>:outcomes`` a sorted
    set of request ids scored by ``at``, trimmed to ``ttl_s``. The replay cursor lives
    in ``<directory>/outcomes.replayed``, so give each replica its own directory.
    """

    def __init__(self, state: SharedState, fallback: LocalOutcomes, *, ttl_s: float = DEFAULT_TTL_S) -> None:
        self._state = state
        self._fallback = fallback
        self._ttl_s = ttl_s
        self._cursor_path = fallback.directory / "outcomes.replayed"
        self._cursor: int | None = None
        self._replay_lock = asyncio.Lock()
        state.on_resync(self._resync)

    async def record(self, outcome: Outcome) -> None:
        if await self._state.run(lambda r: self._write_outcome(r, outcome)) is None:
            await self._fallback.record(outcome)

    async def outcome(self, request_id: str) -> Outcome | None:
        found = await self._in_redis(lambda r: self._read_outcome(r, request_id))
        if found is not None:
            return found[0]
        return await self._local_outcome(request_id)

    async def add_feedback(self, feedback: Feedback, *, replace: bool = True) -> Outcome | None:
        found = await self._in_redis(lambda r: self._write_feedback(r, feedback, replace))
        if found is not None:
            if found[1] is not None:
                raise FeedbackExists(found[1])
            return found[0]
        # Redis is down: the journal is the record, so a repeat is judged against this replica's only.
        outcome = await self._local_outcome(feedback.request_id)
        await self._fallback.add_feedback(feedback, replace=replace)
        return outcome

    async def _in_redis(self, ask: Callable[[Redis], Awaitable[_Found]]) -> _Found | None:
        """``ask`` Redis about a request, replaying the outage journal first if it may hold the request.

        None when Redis is down (use the journal); a found tuple whose outcome is None: unknown.
        """
        found = await self._state.run(ask)
        if found is not None and found[0] is None and self._backlog():
            # Perhaps recorded during the outage and not replayed yet: replay, then ask again.
            await self.replay()
            found = await self._state.run(ask)
        return found

    async def _local_outcome(self, request_id: str) -> Outcome:
        outcome = await self._fallback.outcome(request_id)
        if outcome is None:
            raise OutcomesUnavailable(f"request {request_id!r} is unknown here and redis is down")
        return outcome

    async def rows(self, experiment: str) -> list[Row]:
        if self._state.available and self._backlog():
            await self.replay()
        rows = await self._state.run(lambda r: self._read_rows(r, experiment))
        return rows if rows is not None else await self._fallback.rows(experiment)

    async def replay(self) -> int:
        """Write the journal's entries past the cursor into Redis; how many were written.

        Stops at the first failure (Redis down again) and continues from there next time.
        """
        async with self._replay_lock:
            cursor = self._read_cursor()
            entries = await asyncio.to_thread(self._fallback.entries_since, cursor)
            written = 0
            for start in range(0, len(entries), _REPLAY_BATCH):
                batch = entries[start:start + _REPLAY_BATCH]
                if await self._state.run(partial(self._write_all, entries=batch)) is None:
                    break
                written += len(batch)
                await asyncio.to_thread(self._write_cursor, batch[-1][1])
            if written:
                log.info("replayed %d outcome journal entries into redis", written)
            return written

    async def _resync(self) -> None:
        await self.replay()

    def _backlog(self) -> bool:
        return self._fallback.size() > self._read_cursor()

    def _read_cursor(self) -> int:
        if self._cursor is None:
            try:
                self._cursor = int(self._cursor_path.read_text() or 0)
            except FileNotFoundError:
                self._cursor = 0
        return self._cursor

    def _write_cursor(self, offset: int) -> None:
        temporary = self._cursor_path.with_suffix(".tmp")
        temporary.write_text(str(offset))
        os.replace(temporary, self._cursor_path)  # atomic: a crash leaves the old or the new cursor
        self._cursor = offset

    def _request_key(self, request_id: str) -> str:
        return self._state.key("outcome", request_id)

    def _experiment_key(self, experiment: str) -> str:
        return self._state.key("experiment", experiment, "outcomes")

    async def _write_all(self, r: Redis, entries: list[tuple[Outcome | Feedback, int]]) -> bool:
        for record, _ in entries:
            if isinstance(record, Outcome):
                await self._write_outcome(r, record)
            else:
                await self._write_feedback(r, record)
        return True

    async def _write_outcome(self, r: Redis, outcome: Outcome) -> bool:
        key, experiment_key = self._request_key(outcome.request_id), self._experiment_key(outcome.experiment)
        ttl = max(1, int(self._ttl_s))
        async with r.pipeline(transaction=True) as pipe:
            pipe.hset(key, "outcome", _to_json(outcome))
            pipe.expire(key, ttl)
            pipe.zadd(experiment_key, {outcome.request_id: outcome.at})
            pipe.zremrangebyscore(experiment_key, "-inf", f"({outcome.at - self._ttl_s!r}")
            pipe.expire(experiment_key, ttl)
            await pipe.execute()
        return True

    async def _read_outcome(self, r: Redis, request_id: str) -> _Found:
        found = await r.hget(self._request_key(request_id), "outcome")
        return (_from_dict(Outcome, json.loads(found)) if found else None, None)

    async def _write_feedback(self, r: Redis, feedback: Feedback, replace: bool = True) -> _Found:
        """The request's outcome and, when refused, its earlier feedback (see ``_Found``)."""
        found = await _FEEDBACK(r, [self._request_key(feedback.request_id)],
                                [_to_json(feedback), repr(feedback.at), "1" if replace else "0"])
        if not found:
            return (None, None)
        earlier = _from_dict(Feedback, json.loads(found[1])) if len(found) > 1 else None
        return (_from_dict(Outcome, json.loads(found[0])), earlier)

    async def _read_rows(self, r: Redis, experiment: str) -> list[Row]:
        # members are str: the client decodes responses (SharedState.connect)
        ids = [member for member in await r.zrange(self._experiment_key(experiment), 0, -1)
               if isinstance(member, str)]
        rows: list[Row] = []
        for start in range(0, len(ids), _READ_CHUNK):
            async with r.pipeline(transaction=False) as pipe:
                for request_id in ids[start:start + _READ_CHUNK]:
                    pipe.hmget(self._request_key(request_id), "outcome", "feedback")
                replies = await pipe.execute()
            for outcome, feedback in replies:
                if outcome is None:  # expired before its id was trimmed
                    continue
                rows.append((_from_dict(Outcome, json.loads(outcome)),
                             _from_dict(Feedback, json.loads(feedback)) if feedback else None))
        return rows


def outcome_store(state: SharedState, directory: str | Path) -> OutcomeStore:
    """Redis-backed outcomes (journalling to ``directory`` during outages) or plain local ones."""
    local = LocalOutcomes(directory)
    return SharedOutcomes(state, local) if state.enabled else local
