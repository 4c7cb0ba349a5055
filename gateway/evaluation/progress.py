"""A one-line progress bar on stderr: redrawn in place on a terminal, every tenth when piped."""

from __future__ import annotations

import sys
from typing import TextIO

_WIDTH = 30


class Progress:
    def __init__(self, total: int, done: int = 0, out: TextIO | None = None, enabled: bool = True) -> None:
        self.total, self.done, self.failed = total, done, 0
        self._out = out if out is not None else sys.stderr
        self._enabled = enabled and total > 0
        self._tty = self._out.isatty()
        self._shown_tenth = -1
        self._draw()

    def advance(self, ok: bool) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        self._draw()

    def _draw(self) -> None:
        if not self._enabled:
            return
        tenth = self.done * 10 // self.total
        if not self._tty and tenth == self._shown_tenth:
            return
        self._shown_tenth = tenth
        filled = self.done * _WIDTH // self.total
        line = (f"[{'#' * filled}{'.' * (_WIDTH - filled)}] {self.done}/{self.total} calls"
                + (f", {self.failed} failed" if self.failed else ""))
        self._out.write(("\r" + line) if self._tty else line + "\n")
        self._out.flush()

    def close(self) -> None:
        if self._enabled and self._tty:
            self._out.write("\n")
            self._out.flush()
