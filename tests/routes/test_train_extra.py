"""The `[train]` extra (onnx, scipy): serving never imports it, and training without it says how to get it.

The serving install (`pip install .`, the container image) leaves the extra out, so an import of
either from the serving path would break it while every test here, run with the extra, passed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from routes.training.cli import TRAIN_EXTRA

REPO = Path(__file__).resolve().parents[2]

SERVING = """
import json, sys
import gateway.app, gateway.cli.main, gateway.cli.serve
from routes import load_classifier
for name in ("default", "fast"):
    load_classifier(name).score([{"role": "user", "content": "Prove that the square root of 2 is irrational."}])
print(json.dumps(sorted(sys.modules)))
"""

WITHOUT_EXTRA = """
import sys
sys.modules.update({name: None for name in sys.argv[1].split(",")})  # None: the import fails, as if not installed
from gateway.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def _python(code: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=REPO,
                          timeout=120, check=False)


def test_serving_imports_nothing_from_the_train_extra() -> None:
    result = _python(SERVING)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert "gateway.app" in loaded and "routes._static" in loaded
    assert [name for name in loaded if name.split(".")[0] in TRAIN_EXTRA] == []
    assert [name for name in loaded if name.startswith(("routes.training.train", "routes.training.logistic",
                                                         "routes.training.onnx"))] == []


@pytest.mark.parametrize("missing", ["onnx", "scipy", "onnx,scipy"])
@pytest.mark.parametrize("command", [["train", "--out", "model.npz"], ["cv"]])
def test_training_without_the_extra_is_one_line_naming_it(tmp_path: Path, missing: str, command: list[str]) -> None:
    result = _python(WITHOUT_EXTRA, missing, "router", *command, "--data-root", str(tmp_path))
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"router {command[0]}: training needs {missing.replace(',', ' and ')},")
    assert line.endswith("pip install 'hybrid-gateway[train]'")
