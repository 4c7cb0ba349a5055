"""The test set and the resumable journal of answers it produced.

A test set is JSONL, one example a line: ``{"messages": [...], "expected":
"...", "metadata": {...}}`` (``metadata.id`` names the example in reports; it
is never sent to the gateway). Errors name the file and line, like the policy
loader's.

The journal (:class:`ResponseLog`) is what makes a run resumable without
re-billing: each finished call is appended as one flushed and fsynced line
keyed by example index and arm, and a rerun skips every key already there. A
line cut short by a crash is ignored (its call is made again), and a journal
written for another version of the test set is refused rather than mixed in.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson


class DatasetError(ValueError):
    """The test set or the journal cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Example:
    index: int
    """Position among the file's examples (0-based); with the arm, the journal key."""
    messages: tuple[Mapping[str, Any], ...]
    expected: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.metadata.get("id", self.index))

    @property
    def fingerprint(self) -> str:
        """Digest of what is asked and expected, so a journal line is matched to the same example."""
        raw = orjson.dumps({"messages": list(self.messages), "expected": self.expected},
                           option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(raw).hexdigest()[:16]


def _example(path: Path, line: int, index: int, data: Any) -> Example:
    where = f"{path}:{line}"
    if not isinstance(data, dict):
        raise DatasetError(f"{where}: expected a JSON object, got {type(data).__name__}")
    unknown = set(data) - {"messages", "expected", "metadata"}
    if unknown:
        raise DatasetError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; "
                           "allowed: messages, expected, metadata")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise DatasetError(f"{where}: messages must be a non-empty list of objects with a role")
    expected = data.get("expected")
    if not isinstance(expected, str):
        raise DatasetError(f"{where}: expected must be a string")
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict):
        raise DatasetError(f"{where}: metadata must be an object")
    return Example(index, tuple(messages), expected, metadata)


def load_examples(path: Path) -> list[Example]:
    """Every example of a JSONL test set; blank lines are skipped, anything else malformed is an error."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc.strerror}") from exc
    examples: list[Example] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: not JSON: {exc}") from exc
        examples.append(_example(path, number, len(examples), data))
    if not examples:
        raise DatasetError(f"{path}: no examples")
    return examples


def key(index: int, arm: str) -> str:
    return f"{index}:{arm}"


class ResponseLog:
    """Append-only JSONL of finished calls, one per (example, arm); reopened, it says what is done."""

    def __init__(self, path: Path, examples: Sequence[Example]) -> None:
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        for record in self._read():
            self._check(record, examples)
            self.records[record["key"]] = record
        self._file: IO[bytes] | None = None

    def _read(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        raw = self.path.read_bytes()
        complete, _, torn = raw.rpartition(b"\n")  # a line without its newline was cut off mid-write
        if torn:
            self.path.write_bytes(complete + b"\n" if complete else b"")
        for number, line in enumerate(complete.splitlines(), start=1):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise DatasetError(f"{self.path}:{number}: not JSON: {exc}") from exc
            yield record

    def _check(self, record: Mapping[str, Any], examples: Sequence[Example]) -> None:
        index = record.get("example")
        if not isinstance(index, int) or not 0 <= index < len(examples) \
                or examples[index].fingerprint != record.get("fingerprint"):
            raise DatasetError(f"{self.path}: line for example {index} does not match this test set; "
                               "it was written for another file: use another --out")

    def done(self, index: int, arm: str) -> bool:
        return key(index, arm) in self.records

    def append(self, record: dict[str, Any]) -> None:
        """Write one finished call durably before anything else happens, so a crash cannot lose it."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("ab")
        self._file.write(orjson.dumps(record) + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.records[record["key"]] = record

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> ResponseLog:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
