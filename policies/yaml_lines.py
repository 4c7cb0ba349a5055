"""A YAML file read with the line of every value, so errors can say ``file:line: path: message``.

Used by the policy loader and by the gateway's keys file: both refuse a key given twice in one mapping
(plain YAML keeps the last one silently, which would hide a mistake) and point at the deepest line a
validation error's path reaches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

Location = tuple[str | int, ...]


class YamlProblem(ValueError):
    """The text is not YAML, or repeats a key: ``line`` (1-based) and ``path`` (dotted, "" for none) say where."""

    def __init__(self, line: int, path: str, message: str) -> None:
        super().__init__(message)
        self.line, self.path, self.message = line, path, message


def dotted(loc: Iterable[str | int]) -> str:
    return ".".join(str(part) for part in loc)


@dataclass(frozen=True)
class YamlDocument:
    """The parsed value (None for an empty text) and the line of each path in it."""

    data: Any
    lines: dict[Location, int]

    def line_of(self, loc: Iterable[str | int]) -> int:
        """The line of the deepest node on ``loc``'s path (1 when none is known)."""
        key = tuple(loc)
        while key and key not in self.lines:
            key = key[:-1]
        return self.lines.get(key, 1)


def _record(node: yaml.Node, loc: Location, lines: dict[Location, int]) -> None:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                raise YamlProblem(key_node.start_mark.line + 1, dotted((*loc, key)), "duplicate key")
            seen.add(key)
            _record(value_node, (*loc, key), lines)
            lines[(*loc, key)] = key_node.start_mark.line + 1  # point at the key, not at its value
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record(item, (*loc, index), lines)


def read_yaml(text: str) -> YamlDocument:
    """``text`` parsed safely, with its lines; ``YamlProblem`` for invalid YAML or a repeated key."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise YamlProblem(exc.problem_mark.line + 1 if exc.problem_mark else 0, "",
                          f"invalid YAML: {exc.problem}") from exc
    lines: dict[Location, int] = {}
    if root is None:
        return YamlDocument(None, lines)
    _record(root, (), lines)
    return YamlDocument(yaml.safe_load(text), lines)
