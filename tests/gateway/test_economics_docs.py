"""docs/economics.md's worked example runs as written: its assertions are the documented numbers."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "economics.md"


def test_the_worked_example_runs() -> None:
    [example] = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    exec(compile(example, str(DOC), "exec"), {})  # our own documentation, run as a test
