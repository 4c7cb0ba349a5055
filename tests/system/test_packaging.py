"""The wheel (what `pip install .` and the container image get) carries every data file the code reads.

Dashboard assets, shipped policies, classifier models and the demo corpus live beside the
code; a pattern missing from `[tool.setuptools.package-data]` would pass every test run
from the checkout and break only an installed copy. The classifier's C source goes in
compiled, not as data (setup.py). Built offline with the test environment's setuptools (no
build isolation, nothing downloaded).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "policies", "routes", "retrieval")


def _tracked_data_files() -> set[str]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", *PACKAGES],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return {name for name in listed if not name.endswith((".py", ".c"))}


def test_wheel_carries_every_data_file(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    [wheel] = tmp_path.glob("hybrid_gateway-*.whl")
    inside = set(zipfile.ZipFile(wheel).namelist())
    expected = _tracked_data_files()
    assert {"routes/models/default.npz", "gateway/dashboard/index.html", "policies/default/routes.yaml"} <= expected
    assert expected - inside == set()
    assert [name for name in inside if name.startswith("routes/_scorer.") and name.endswith(".so")]
